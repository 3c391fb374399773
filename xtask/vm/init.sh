#!/bin/busybox sh
# /init of keytrail's test VM (xtask/src/vm): runs keytrail once per pass, each pass with some
# kinds of hook skipped so that their fallbacks serve, drives the same readers and connections
# in each, and prints what keytrail saw between markers on the serial console. The host judges
# the records (xtask/src/vm/check.rs); this script only acts.
#
# The credentials: /root/.netrc on the initramfs root (tmpfs: no page cache, only opens are
# seen) and /root/.aws/credentials on a ramfs, whose reads and mmap faults go through the page
# cache as ext4's and xfs's do (filemap_read, filemap_fault). Both are written into the image by
# the host; nothing secret is on the kernel command line or in any environment.
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

mkdir -p /root/.aws /mnt/aws
mount -t ramfs ramfs /root/.aws
cp /kt/aws-credentials /root/.aws/credentials
head -c 4096 /dev/zero > /root/.aws/notes
mkdir -p /root/.ssh
printf -- '-----BEGIN OPENSSH PRIVATE KEY-----\nkt-vm-not-a-real-key\n-----END OPENSSH PRIVATE KEY-----\n' \
    > /root/.ssh/id_ed25519
chmod 600 /root/.aws/credentials /root/.netrc /root/.ssh/id_ed25519
mount --bind /root/.aws /mnt/aws
echo 1 > /proc/sys/kernel/bpf_stats_enabled

# Endpoint names: a real DNS server for api.example.test, and listeners.
echo "nameserver 127.0.0.1" > /etc/resolv.conf
dnsmasq --keep-in-foreground --no-resolv --no-hosts --listen-address=127.0.0.1 \
    --bind-interfaces --address=/api.example.test/127.0.0.1 --user=root --pid-file= &

READS="read pread mmap io_uring sendfile splice"

# One pass: keytrail with `--skip-hooks $1` (or none; or `enforce`: a policy that refuses reads
# of the SSH key and reads TLS writes from credential holders only), the scenarios, and its
# output.
pass() {
    echo "KT-PASS ${1:-default}"
    rm -f /tmp/go /tmp/records /tmp/log
    # Readers that open the credential before keytrail starts: only their reads can be seen.
    READERS=""
    for method in $READS; do
        kt-vm-helper hold $method /root/.aws/credentials /tmp/go &
        READERS="$READERS $!"
    done
    case "$1" in
    "") keytrail run --format json > /tmp/records 2> /tmp/log & ;;
    enforce)
        # A policy that refuses: opens of the SSH key by programs other than kt-vm-helper
        # (read denial, where BPF LSM runs); and TLS writes read from credential holders only
        # (per-process uprobes through tracefs).
        # And connects with a credential in another context than the one that owns it
        # (/root/.aws/credentials, owned by kt-a).
        # These rules come first: the first rule that names a file is its rule.
        printf '[[credentials]]\nkind = "ssh"\npaths = ["/root/.ssh/id_ed25519"]\nreaders = ["kt-vm-helper"]\n\n' \
            > /tmp/enforce.toml
        printf '[[credentials]]\nkind = "aws"\npaths = ["/root/.aws/credentials"]\ncontext = "kt-a"\n\n' \
            >> /tmp/enforce.toml
        keytrail policy --default | sed -e 's/^tls = "all"/tls = "holders"/' \
            -e 's/^\[rules.unexpected-reader\]/&\naction = "deny"/' \
            -e 's/^\[rules.cross-context-reuse\]/&\naction = "deny"/' >> /tmp/enforce.toml
        keytrail run --format json --config /tmp/enforce.toml > /tmp/records 2> /tmp/log & ;;
    *) keytrail run --format json --skip-hooks "$1" > /tmp/records 2> /tmp/log & ;;
    esac
    KT=$!
    i=0
    while ! grep -q '"type":"ready"' /tmp/records 2>/dev/null; do
        i=$((i + 1))
        if [ $i -gt 300 ] || ! kill -0 $KT 2>/dev/null; then break; fi
        sleep 1
    done

    touch /tmp/go
    if [ "$1" = enforce ]; then
        # Read denial: busybox (cat) is no allowed reader of the SSH key; kt-vm-helper is.
        if cat /root/.ssh/id_ed25519 > /dev/null 2>&1; then r=read; else r=refused; fi
        echo "KT-SSH-CAT $r"
        if kt-vm-helper loop /root/.ssh/id_ed25519 1 > /dev/null 2>&1; then r=read; else r=refused; fi
        echo "KT-SSH-HELPER $r"
        # Nor may busybox move or link it out of the catalog's paths (put back where it was not
        # refused, as on 5.10 without BPF LSM).
        if mv /root/.ssh/id_ed25519 /root/moved-key 2> /dev/null; then
            r=moved; mv /root/moved-key /root/.ssh/id_ed25519
        else r=refused; fi
        echo "KT-SSH-MV $r"
        if ln /root/.ssh/id_ed25519 /root/linked-key 2> /dev/null; then
            r=linked; rm /root/linked-key
        else r=refused; fi
        echo "KT-SSH-LN $r"
        # Contexts: the AWS key belongs to kt-a. In kt-b, where BPF LSM runs, its open is
        # refused (EACCES); elsewhere it is read, and then no connect may go out (EPERM, where
        # the kernel knows contexts). In kt-a it is read, and it may.
        nc -l -p 9002 > /dev/null &
        sleep 1
        for ctx in kt-b kt-a; do
            out=$(KEYTRAIL_CONTEXT=$ctx sh -c 'read line < /root/.aws/credentials
                echo hello | nc 127.0.0.1 9002' 2>&1)
            case "$out" in *"denied"*) r=refused ;; *) r=read ;; esac
            echo "KT-CTX-READ-$ctx $r"
            case "$out" in *"not permitted"*) r=refused ;; *) r=connected ;; esac
            echo "KT-CTX-$ctx $r"
        done
    fi
    # A reader through a bind mount, and one through another process's root; each pid said, so
    # that the check finds their records by pid (under emulation the exec event may be handled
    # after the open, and the open then carries the shell's argv: a known race, not this claim).
    cat /mnt/aws/credentials > /dev/null &
    echo "KT-PID-BIND $!"
    wait $!
    cat /proc/1/root/root/.aws/credentials > /dev/null &
    echo "KT-PID-PROCROOT $!"
    wait $!
    # A reader of the tmpfs credential (opens only).
    cat /root/.netrc > /dev/null
    # A read, then a connect by the reader's child (a use by inheritance); and a connect by a
    # process that read nothing (no use).
    nc -l -p 9000 > /dev/null &
    nc -l -p 9001 > /dev/null &
    sleep 1
    sh -c 'read line < /root/.netrc; echo hello | nc 127.0.0.1 9000'
    sh -c 'echo hello | nc 127.0.0.1 9001'
    # Proof of use over TLS: curl reads ~/.netrc and sends Basic credentials to a TLS server
    # (OpenSSL's s_server); keytrail reads them before encryption (a uprobe on SSL_write, and
    # tp_btf/sock_send_length or kprobe/tcp_sendmsg for the connection).
    openssl s_server -quiet -accept 9445 -cert /kt/tls.pem -key /kt/tls.key -www > /dev/null 2>&1 &
    TLS_SERVER=$!
    sleep 1
    if [ "$1" = enforce ]; then
        # Holders only: the shell is followed from its read on, and curl, started after,
        # inherits its uprobes (curl's own read of ~/.netrc comes too late to be followed).
        sh -c 'read line < /root/.netrc; sleep 2
            curl -sk -n --max-time 10 https://127.0.0.1:9445/holders' > /dev/null
    else
        curl -sk -n --max-time 10 https://127.0.0.1:9445/proof > /dev/null
    fi
    kill $TLS_SERVER
    if [ -z "$1" ]; then
        # Names: by the DNS answer curl received (plain HTTP, so no server name beside it), and
        # by the TLS server name alone (a claimed name: shown, but judged as no name).
        nc -l -p 9443 > /dev/null &
        nc -l -p 9444 > /dev/null &
        sleep 1
        sh -c 'read line < /root/.netrc; curl -s --max-time 3 http://api.example.test:9443/' > /dev/null
        sh -c 'read line < /root/.netrc
            curl -sk --max-time 3 --resolve tls.example.test:9444:127.0.0.1 https://tls.example.test:9444/' > /dev/null
    fi
    # A workload for the kernel's statistics: opens and reads of an unwatched page-cache file.
    kt-vm-helper loop /root/.aws/notes 5000
    wait $READERS
    # Connection records wait up to a second for the connection's first bytes.
    sleep 2

    kill -INT $KT
    wait $KT
    echo "KT-EXIT $?"
    echo KT-RECORDS-BEGIN
    cat /tmp/records
    echo KT-RECORDS-END
    echo KT-LOG-BEGIN
    cat /tmp/log
    echo KT-LOG-END
    pkill nc
}

# Debian ships kernel.perf_event_paranoid = 3, where following a holder's TLS writes takes
# CAP_SYS_ADMIN (keytrail then reads every process's, and says so); the enforce pass sets 2.
PARANOID=$(cat /proc/sys/kernel/perf_event_paranoid)
echo "KT-PARANOID $PARANOID"
for skip in $(cat /kt/passes); do
    if [ "$skip" = enforce ]; then echo 2 > /proc/sys/kernel/perf_event_paranoid; fi
    if [ "$skip" = default ]; then pass ""; else pass "$skip"; fi
    echo "$PARANOID" > /proc/sys/kernel/perf_event_paranoid
done
echo KT-DONE
echo o > /proc/sysrq-trigger
sleep 10
