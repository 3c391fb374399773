#!/bin/busybox sh
# /init of keytrail's test VM (xtask/src/vm): starts keytrail, drives a reader and a
# read-then-connect with busybox tools, and prints what keytrail saw between markers on the
# serial console. The host judges the records (xtask/src/vm/check.rs); this script only acts.
/bin/busybox --install -s /bin
export PATH=/bin HOME=/root
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
mount -t bpf bpf /sys/fs/bpf
mount -t tracefs tracefs /sys/kernel/tracing
mount -t securityfs securityfs /sys/kernel/security
mkdir -p /sys/fs/cgroup && mount -t cgroup2 cgroup2 /sys/fs/cgroup
ip link set lo up
echo "KT-KERNEL $(uname -r)"
echo "KT-LSM $(cat /sys/kernel/security/lsm 2>/dev/null || echo none)"

printf 'machine 127.0.0.1 login bot password %s\n' "$KT_TOKEN" > /root/.netrc
chmod 600 /root/.netrc

keytrail run --format json > /tmp/records 2> /tmp/log &
KT=$!
i=0
while ! grep -q '"type":"ready"' /tmp/records 2>/dev/null; do
    i=$((i + 1))
    if [ $i -gt 300 ] || ! kill -0 $KT 2>/dev/null; then break; fi
    sleep 1
done

# A reader.
cat /root/.netrc > /dev/null
# A read, then a connect by the reader's child (a use by inheritance).
nc -l -p 9000 > /dev/null &
sleep 1
sh -c 'read line < /root/.netrc; echo hello | nc 127.0.0.1 9000'
# Connection records wait up to a second for the connection's first bytes.
sleep 3

kill -INT $KT
wait $KT
echo "KT-EXIT $?"
echo KT-RECORDS-BEGIN
cat /tmp/records
echo KT-RECORDS-END
echo KT-LOG-BEGIN
cat /tmp/log
echo KT-LOG-END
echo KT-DONE
echo o > /proc/sysrq-trigger
sleep 10
