"""What omnisync adds to every PostgreSQL connection it makes (the state store's and a
source's) unless the configured DSN sets it itself. Pure."""

from __future__ import annotations

#: A peer gone silent (a black-holed path: a NAT or load balancer's idle drop, a failover
#: moving the address) is found in about 20-25 s, about a default lease's takeover time, not
#: the kernel's ~15 minutes of retries: keepalives probe an idle connection (and keep a NAT's
#: mapping alive), tcp_user_timeout (ms) drops one whose sent data goes unacknowledged.
#: Neither cuts a slow statement or a long segment query short: the server's kernel answers
#: the probes and acknowledges what we sent (the query, a FETCH) however long it runs.
CONNECTION_DEFAULTS = {
    # Who the connection is, in pg_stat_activity and the server's logs.
    "application_name": "omnisync",
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
    "tcp_user_timeout": "20000",
}
