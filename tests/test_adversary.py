import torch

from haba_core import Adversary, HallucinatorConfig, SyntheticSet, get_network
from haba_core.adversary import pairwise_cosine_loss, supervised_contrastive_loss


def test_supcon_prefers_aligned_positives():
    labels = torch.tensor([0, 0, 1, 1])
    aligned = torch.tensor([[1.0, 0], [1.0, 0.1], [0, 1.0], [0.1, 1.0]])
    mixed = torch.tensor([[1.0, 0], [0, 1.0], [1.0, 0.1], [0.1, 1.0]])
    assert supervised_contrastive_loss(aligned, labels) < supervised_contrastive_loss(mixed, labels)


def test_cosine_loss_only_compares_same_basis_different_hallucinator():
    feats = torch.tensor([[1.0, 0], [0, 1.0], [1.0, 0], [1.0, 0]])
    b = torch.tensor([0, 1, 0, 1])
    h = torch.tensor([0, 0, 1, 1])
    # pairs: (0,2) same basis 0 -> cos 1 ; (1,3) same basis 1 -> cos 0
    assert abs(float(pairwise_cosine_loss(feats, b, h, "mean")) - 0.5) < 1e-6
    # Eq. 5: per basis, the 2 ordered pairs / |H'|² = 4, averaged over the 2 bases -> (2/4 + 0) / 2
    assert abs(float(pairwise_cosine_loss(feats, b, h)) - 0.25) < 1e-6
    assert float(pairwise_cosine_loss(feats, b, torch.zeros(4, dtype=torch.long))) == 0.0


def _setup(seed=0):
    torch.manual_seed(seed)
    synth = SyntheticSet(torch.randn(6, 1, 8, 8), torch.tensor([0, 0, 1, 1, 2, 2]), (1, 8, 8), 3,
                         num_hallucinators=2, hallucinator_config=HallucinatorConfig(init="identity"))
    net = get_network("ConvNet", 1, 3, 8, width=8, depth=2)
    return synth, net


def test_adversary_loss_decreases():
    synth, net = _setup()
    adv = Adversary(net, lr=0.05)
    imgs, labels, b, _ = synth.compose_pairs(torch.arange(6), torch.tensor([0, 1]))
    first = adv.step(imgs, labels, b)
    for _ in range(30):
        last = adv.step(imgs, labels, b)
    assert last < first


def test_l_cos_decreases_the_similarity_it_measures():
    synth, net = _setup(1)
    for p in net.parameters():
        p.requires_grad_(False)
    opt = torch.optim.Adam(synth.hallucinators.parameters(), lr=0.02)
    idx, hs = torch.arange(6), torch.tensor([0, 1])

    def measure():
        imgs, _, b, h = synth.compose_pairs(idx, hs)
        return pairwise_cosine_loss(net(imgs, return_features=True)[1], b, h)

    before = float(measure().detach())
    for _ in range(40):
        loss = measure()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(measure().detach()) < before - 0.05


def test_contrastive_loss_paper_normalisation_is_h_minus_1_over_h_of_the_mean():
    torch.manual_seed(0)
    feats, labels = torch.randn(9, 4), torch.tensor([0, 1, 2] * 3)
    b = torch.tensor([0, 1, 2] * 3)  # 3 bases through 3 hallucinators each
    mean = supervised_contrastive_loss(feats, labels, groups=b, normalization="mean")
    paper = supervised_contrastive_loss(feats, labels, groups=b, normalization="paper")
    assert torch.allclose(paper, mean * 2 / 3)
    adv = Adversary(get_network("ConvNet", 1, 3, 8, width=8, depth=2))
    assert adv.optimizer.param_groups[0]["momentum"] == 0.9 and adv.normalization == "paper"
