#!/usr/bin/env bash
# Join six started nodes (vpp-redis@7000 and vpp-redis@7001 on each of three
# hosts) into a cluster of three masters with one replica each. Run once, from
# any host, after the nodes are up; redis-cli places each replica on another
# host than its master.
#
#   ops/cluster/create-redis-cluster.sh 10.0.0.11 10.0.0.12 10.0.0.13
set -euo pipefail
if [ $# -ne 3 ]; then
    echo "usage: $0 HOST_A HOST_B HOST_C" >&2
    exit 2
fi
nodes=()
for host in "$@"; do nodes+=("$host:7000" "$host:7001"); done
redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes
redis-cli -h "$1" -p 7000 cluster info | grep -E 'cluster_state|cluster_known_nodes|cluster_size'
