"""A directory of combined-format server logs (plain or gzipped), as a store: a person's lines are
those from the IP addresses found on their own rows and on no one else's. Lines from an address
that another owner used too (a household's or an office's shared address) are held back as
possible matches, never packaged or erased.

A line is found as file and line number (`access.log.1:1234`, from 1). Given the vault's blind
indexer, the files are read through their index by client address (include/stores/logindex.py): a
search reads only the blocks holding the person's addresses, and an erasure rewrites only the files
that hold them; a file without a current index is read in full, and indexed.

Erasure anonymises or drops the person's lines, as the controller's instruction for its logs says,
whatever their age; each file is replaced atomically, and progress is kept after each file so that
a retried task reports the files done before it.
"""

from __future__ import annotations

from pathlib import Path

from include.common.errors import InvalidInput, StoreUnavailable
from include.common.files import remove_stale_temporaries
from include.common.yamlfiles import LoadedFile
from include.crypto.blind_index import BlindIndexer
from include.datamap.model import DataMap
from include.stores.base import Acting, Done, FoundRecord, Outcome, Plan, PossibleMatch, Store, StoreResult
from include.stores.identities import IdentitySet, Standing
from include.stores.logindex import LogIndex
from include.stores.serverlogs import apply_to_hosts, lines_from_hosts, log_files

SHARED_ADDRESS = "from an IP address that another owner used too"


class LogErasurePlan(Plan):
    hosts: list[str]
    action: str


class LogStore(Store[LogErasurePlan, Plan]):
    kind = "server_logs"
    erasure_plan_type = LogErasurePlan

    def __init__(self, loaded: LoadedFile[DataMap], log_root: Path, indexer: BlindIndexer | None = None) -> None:
        logs = loaded.content.logs
        if loaded.content.kind != "server_logs" or logs is None:
            raise InvalidInput(f"{loaded.path}: store '{loaded.content.store}' is not a server_logs store")
        self.loaded = loaded
        self.map = loaded.content
        self.logs = logs
        self.id = self.map.store
        self.directory = logs.path(log_root)
        self.index = LogIndex(indexer, self.map.controller) if indexer else None

    def test_connection(self) -> None:
        if not self.directory.is_dir():
            raise StoreUnavailable(f"store '{self.id}': log directory {self.directory} does not exist")

    def files(self) -> list[Path]:
        self.test_connection()
        return log_files(self.directory, self.logs.pattern)

    def search(self, identities: IdentitySet) -> StoreResult:
        result = StoreResult(self.id, self.kind, identities=identities)
        hosts = identities.values("ip")
        shared = [e.value for e in identities.of("ip", Standing.shared)]
        for path in self.files():
            for number, host, line in lines_from_hosts(path, hosts + shared, self.index):
                key = f"{path.name}:{number}"
                if host in hosts:
                    result.records.append(FoundRecord(self.id, path.name, key, {"line": line},
                                                      identities.describe("ip", host)))
                else:
                    result.held.append(PossibleMatch(self.id, path.name, key, SHARED_ADDRESS))
        return result

    def plan_erasure(self, identities: IdentitySet, acting: Acting) -> LogErasurePlan:
        instruction = acting.instructions().require(acting.controller_id, self.logs.instruction, acting.at,
                                                    where=f"{self.loaded.path}: logs: ")
        if instruction.log_action is None:
            raise InvalidInput(f"{self.loaded.path}: logs: instruction '{self.logs.instruction}' has no log_action "
                               "(anonymise or drop)")
        return LogErasurePlan(hosts=identities.values("ip"), action=instruction.log_action)

    def apply_erasure(self, plan: LogErasurePlan, acting: Acting) -> Outcome:
        """Rewrite each file in turn, keeping progress ({file: lines changed}) after each."""
        name = f"progress-{self.id}"
        progress = (acting.progress.load(name) if acting.progress else None) or {}
        files = self.files()
        remove_stale_temporaries(self.directory)  # a killed rewrite's leftovers; its original is intact
        for path in files:
            changed = apply_to_hosts(path, plan.hosts, action=plan.action, index=self.index).lines_changed
            progress[path.name] = progress.get(path.name, 0) + changed
            if acting.progress:
                acting.progress.save(name, progress)
        return Outcome(done=[Done(table=file, action=plan.action, records=lines)
                             for file, lines in sorted(progress.items()) if lines])

    def plan_rectification(self, identities: IdentitySet, old: dict[str, str], acting: Acting) -> Plan:
        self.refuse_rectification()

    def apply_rectification(self, plan: Plan, new: dict[str, str], acting: Acting) -> Outcome:
        self.refuse_rectification()
