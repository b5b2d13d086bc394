"""Stable node identity, pure: who is which REGISTRY_LOCALn and who writes the registry.

A node's position in hosts.toml is its start order, nothing more. Its registry number (its
REGISTRY_LOCALn) and the registry-writer role are kept by NAME in a record on the DB host
(record.py), so removing node2 of 3 never moves node3 onto REGISTRY_LOCAL2.

Rules (`resolve`):
- no record yet (a cluster deployed before this existed): numbers are the positions and the
  writer is the first node, which is exactly what those clusters run with today;
- a recorded name keeps its number whatever its position; a new name gets the lowest number
  neither used nor retired (a removed node's REGISTRY_LOCALn is kept, so its number is too);
- the writer is the recorded one; a recorded node missing from hosts.toml is an orphan, and a
  run refuses to change anything until `fab remove-node NAME` retires it.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

from ...engine.inventory import Host, Inventory

FORMAT = 1


@dataclass(frozen=True)
class Identity:
    name: str
    address: str
    number: int  # the n of its REGISTRY_LOCALn
    ssh_address: str = ""  # where remove-node reaches it once hosts.toml no longer says

    def host(self, index: int, writer: bool) -> Host:
        """A Host for a node hosts.toml no longer lists (remove-node works on it)."""
        return Host(self.name, "node", self.address, self.ssh_address or self.address,
                    index, registry=self.number, writer=writer)


@dataclass
class Record:
    """What the DB host keeps: the members by name, the registry writer, retired numbers."""

    nodes: dict[str, Identity] = field(default_factory=dict)
    writer: str = ""
    retired: dict[int, str] = field(default_factory=dict)  # number -> the removed node's name

    def render(self) -> bytes:
        data = {"format": FORMAT, "writer": self.writer,
                "nodes": [dataclasses.asdict(i) for i in
                          sorted(self.nodes.values(), key=lambda i: i.number)],
                "retired": {str(k): v for k, v in sorted(self.retired.items())}}
        return (json.dumps(data, indent=1) + "\n").encode()

    @classmethod
    def parse(cls, text: bytes | None) -> "Record | None":
        """None when there is no record; ValueError when there is one we cannot read."""
        if text is None or not text.strip():
            return None
        try:
            data = json.loads(text)
            nodes = {n["name"]: Identity(str(n["name"]), str(n["address"]), int(n["number"]),
                                         str(n.get("ssh_address", "")))
                     for n in data["nodes"]}
            retired = {int(k): str(v) for k, v in data.get("retired", {}).items()}
            writer = str(data.get("writer", ""))
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"unreadable ({type(e).__name__}: {e})") from None
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r}, this tool reads {FORMAT}")
        return cls(nodes, writer, retired)

    def number_of(self, name: str) -> int:
        return self.nodes[name].number


@dataclass
class Resolution:
    wanted: Record  # the record as this run wants it
    recorded: Record | None  # as read (None: none yet)
    orphans: list[Identity] = field(default_factory=list)  # recorded, not in hosts.toml
    new: list[str] = field(default_factory=list)  # in hosts.toml, not recorded

    @property
    def changed(self) -> bool:
        return self.recorded is None or self.wanted.render() != self.recorded.render()


def lowest_free(used: set[int]) -> int:
    n = 1
    while n in used:
        n += 1
    return n


def resolve(recorded: Record | None, nodes: tuple[Host, ...] | list[Host]) -> Resolution:
    """Pure: each node of hosts.toml with its number, the writer, the orphans (see the module)."""
    if recorded is None:
        wanted = Record({n.name: Identity(n.name, n.address, n.index, n.ssh_address)
                         for n in nodes},
                        nodes[0].name if nodes else "")
        return Resolution(wanted, None)
    names = {n.name for n in nodes}
    orphans = [i for i in recorded.nodes.values() if i.name not in names]
    used = {i.number for i in recorded.nodes.values()} | set(recorded.retired)
    wanted = Record(retired=dict(recorded.retired), writer=recorded.writer)
    new = []
    for i in orphans:  # still theirs until retired by remove-node
        wanted.nodes[i.name] = i
    for n in nodes:
        old = recorded.nodes.get(n.name)
        if old is None:
            num = lowest_free(used)
            used.add(num)
            new.append(n.name)
        else:
            num = old.number
        wanted.nodes[n.name] = Identity(n.name, n.address, num, n.ssh_address)
    if not wanted.writer or wanted.writer not in wanted.nodes:
        wanted.writer = nodes[0].name if nodes else ""
    return Resolution(wanted, recorded, orphans, new)


def orphan_error(orphans: list[Identity], record_path: str) -> str:
    """The refusal a deploy gives while a recorded node is missing from hosts.toml."""
    lines = [f"{i.name} ({i.address}, REGISTRY_LOCAL{i.number})" for i in orphans]
    cmds = "; ".join(f"fab remove-node {i.name}" for i in orphans)
    return ("nothing was changed: hosts.toml no longer lists " + ", ".join(lines)
            + f", but the cluster still has it (recorded in {record_path}; it may still run, "
            "hold a DB account and be a member of the others). Retire it first with: " + cmds
            + "; or put its [[nodes]] entry back")


def with_identity(inv: Inventory, record: Record) -> Inventory:
    """The inventory whose nodes carry their recorded number and writer flag."""
    nodes = tuple(dataclasses.replace(n, registry=record.number_of(n.name),
                                      writer=n.name == record.writer)
                  if n.name in record.nodes else n for n in inv.nodes)
    return dataclasses.replace(inv, nodes=nodes)


def retire(record: Record, name: str, *, purge: bool) -> Record:
    """Pure: the record after `name` left; its number stays taken unless purged. The writer
    role moves to the lowest-numbered remaining node when it was `name`."""
    gone = record.nodes[name]
    nodes = {k: v for k, v in record.nodes.items() if k != name}
    retired = dict(record.retired)
    if not purge:
        retired[gone.number] = name
    writer = record.writer
    if writer == name:
        writer = min(nodes.values(), key=lambda i: i.number).name if nodes else ""
    return Record(nodes, writer, retired)
