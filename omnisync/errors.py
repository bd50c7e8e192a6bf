"""The root of every error omnisync raises on purpose. Pure.

Callers that want "anything omnisync refused or could not do" catch
:class:`OmnisyncError`; everything else escaping is a bug. Every message
says what failed and what to fix, and never holds a secret or a full e-mail
address. The tree (each class lives beside the code that raises it)::

    OmnisyncError
    ├── ConfigInvalid                 config.diagnostics: every problem, with file:line:col
    │   └── ConfigUnreadable          the path is missing or cannot be read (exit 2)
    ├── SecretUnavailable             config.secrets: a {env|file|credential} reference
    ├── NotRegularFile                regularfiles: a FIFO or device where a file must be
    ├── SourceError                   sources.errors: a segment cannot be read
    │   └── StagingFailed             engine.staging: the staging file cannot be written
    ├── StateError                    state.store: the state store cannot be used
    │   ├── StateSchemaTooNew         written by a newer omnisync; left untouched
    │   └── LeaseLost                 state.store: a replica no longer holds the brand
    ├── ExportBusy                    state.locks: the export is running elsewhere
    ├── LockHeld                      state.locks: another process holds a pid lock
    ├── OmnisendError                 omnisend.errors: talking to Omnisend (its own tree)
    │   ├── TransportError, RequestCancelled, UnexpectedResponse
    │   ├── InvalidContactWrite, ItemTooLarge
    │   └── ApiError                  Omnisend's problem document; its status says which
    ├── LedgerUnreadable              engine.staging: the ledger cannot be read for a diff
    ├── RunFailed                     engine.runner: a run cannot proceed
    ├── RunHeld                       engine.runner: a change guard held the run (nothing sent)
    ├── ApiKeyUnavailable             engine.runner: no readable API key; refused, never recorded
    ├── UnknownExport                 engine.runner: no export of that name (also a KeyError)
    ├── RevisionUnavailable           review.revisions: a git revision of the config cannot be read
    ├── LoadFailed, StartupFailed     daemon.loading: the daemon's config or start
    ├── EngineUnavailable             daemon.engine: the state store cannot be opened
    ├── DaemonUnavailable             daemon.discovery: no daemon answers
    │   └── UntrustedStateFile        daemon.json or control.token others could write
    ├── StateDirectoryInUse           daemon.claim: another daemon holds the state directory
    ├── TriggerRefused                daemon.discovery: the daemon refused a run
    └── RemoteRunFailed               daemon.remote: a run through the daemon failed
"""

from __future__ import annotations


class OmnisyncError(Exception):
    """Anything omnisync refused or could not do; the message says what and why."""
