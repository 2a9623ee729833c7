# shellcheck shell=bash
# Source me: podman settings measured to work on the CI machines (see docs/testing.md).
# crun 1.8 refuses the hybrid cgroup layout there -> runc; rootful podman 4.3 asks for rlimits
# above the hard limits and root lacks CAP_SYS_RESOURCE -> pin them (nproc <= kernel.pid_max).
_pe_dir=${BOOTC_COMPOSEFS_TMP:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/.ci/tmp}
mkdir -p "$_pe_dir"
_pe_nofile=$(ulimit -Hn)
[ "$_pe_nofile" = unlimited ] && _pe_nofile=1048576
_pe_nproc=$(cat /proc/sys/kernel/pid_max)
_pe_hu=$(ulimit -Hu)
if [ "$_pe_hu" != unlimited ] && [ "$_pe_hu" -lt "$_pe_nproc" ]; then _pe_nproc=$_pe_hu; fi
cat > "$_pe_dir/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=$_pe_nofile:$_pe_nofile", "nproc=$_pe_nproc:$_pe_nproc"]
[engine]
runtime = "runc"
CONF
export CONTAINERS_CONF=$_pe_dir/containers.conf
unset _pe_dir _pe_nofile _pe_nproc _pe_hu
