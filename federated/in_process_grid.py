"""An in-process Flower ``Grid``: each message goes to the ClientApp of the addressed virtual node, in this process.

It replaces only the transport of a Flower run: one ``Context`` per node that persists across rounds,
``partition-id``/``num-partitions`` in its node config, exceptions turned into error replies as a SuperNode
does. It needs no Ray start-up (~10–20 s) and no extra processes, which matters on small machines.
"""

from __future__ import annotations

import secrets
import traceback
from collections.abc import Iterable
from typing import Any, Mapping

from flwr.app import Context, Error, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid

# flwr.common.constant.ErrorCode.CLIENT_APP_RAISED_EXCEPTION
CLIENT_APP_RAISED_EXCEPTION = 2


class InProcessGrid(Grid):
    """A Grid whose nodes are ClientApp calls in this process (see the module docstring)."""

    def __init__(self, client_app: ClientApp, num_nodes: int, run_config: Mapping[str, Any] | None = None,
                 run_id: int | None = None, node_configs: list[Mapping[str, Any]] | None = None):
        if num_nodes < 1:
            raise ValueError("an in-process grid needs at least one node")
        self.client_app = client_app
        self._run_id = run_id if run_id is not None else secrets.randbits(63)
        self._run = None
        self.contexts: dict[int, Context] = {}
        for i in range(num_nodes):
            node_id = 1000 + i
            node_cfg = {"partition-id": i, "num-partitions": num_nodes, **dict((node_configs or [{}] * num_nodes)[i])}
            self.contexts[node_id] = Context(run_id=self._run_id, node_id=node_id, node_config=node_cfg,
                                             state=RecordDict(), run_config=dict(run_config or {}))
        self._replies: dict[str, Message] = {}
        self._counter = 0

    # -- Grid API
    def set_run(self, run: Any) -> None:
        self._run = run

    @property
    def run(self) -> Any:
        return self._run

    def create_message(self, content: RecordDict, message_type: str, dst_node_id: int, group_id: str,
                       ttl: float | None = None) -> Message:
        return Message(content, dst_node_id=dst_node_id, message_type=message_type, group_id=group_id, ttl=ttl)

    def get_node_ids(self) -> Iterable[int]:
        return list(self.contexts)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        ids = []
        for msg in messages:
            self._counter += 1
            key = f"inprocess-{self._counter}"
            self._replies[key] = self._deliver(msg)
            ids.append(key)
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return [self._replies.pop(k) for k in message_ids if k in self._replies]

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        return self.pull_messages(list(self.push_messages(messages)))

    # -- delivery
    def _deliver(self, msg: Message) -> Message:
        node = msg.metadata.dst_node_id
        if node not in self.contexts:
            return Message(Error(code=5, reason=f"node {node} is not part of this grid"), reply_to=msg)
        try:
            reply = self.client_app(msg, self.contexts[node])
        except Exception as exc:  # noqa: BLE001 - a client crash becomes an error reply, as on a SuperNode
            reason = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"
            return Message(Error(code=CLIENT_APP_RAISED_EXCEPTION, reason=reason), reply_to=msg)
        return reply


def set_task_identity(run_id: int) -> None:
    """Give this process the identity of a ServerApp task of run ``run_id``.

    Flower's runtimes (SuperLink, ``run_simulation``) do this before running a ServerApp, because
    ``Message(...)`` stamps the sender's run/node/task ids into the metadata; the in-process backend and
    tests that build Messages by hand must do the same.
    """
    from flwr.common.constant import SUPERLINK_NODE_ID
    from flwr.supercore.task_identity import TaskIdentity

    TaskIdentity.task_id = 1
    TaskIdentity.run_id = run_id
    TaskIdentity.node_id = SUPERLINK_NODE_ID
