#!/bin/sh
# The service VM's check (xtask/src/vm/service.rs): a Debian userland booted with systemd as
# init runs this once, as kt-service-check.service, after multi-user.target. It installs the
# package as an operator would, starts the unit, reads a credential, reloads, stops, and says
# what it saw on the serial console as `KT-SVC` lines; the host judges them. It then powers
# the VM off.
#
# The credential was written into the image by the host, before keytrail starts; its secret
# is in no environment and not on the kernel command line.
exec >/dev/ttyS0 2>&1
say() { echo "KT-SVC $*"; }
records=/var/log/keytrail/records.json

say kernel "$(uname -r)"
say systemd "$(systemctl --version | head -n1)"

if dpkg -i /kt/keytrail.deb >/tmp/dpkg.log 2>&1; then
    say installed "$(dpkg-query -W -f='${Version}' keytrail)"
else
    say install-failed
    sed 's/^/KT-SVC-DPKG /' /tmp/dpkg.log
fi

# enable --now returns once the unit is up: with Type=notify, once keytrail sent READY.
started=$(date +%s)
if systemctl enable --now keytrail 2>/tmp/enable.log; then
    say started "$(($(date +%s) - started))s"
else
    say start-failed
    sed 's/^/KT-SVC-SYSTEMCTL /' /tmp/enable.log
fi
say state "$(systemctl show -p ActiveState --value keytrail)"
say type "$(systemctl show -p Type --value keytrail)"
# What keytrail kept of its capabilities once attached: the bounding, permitted and effective
# sets.
for set in CapBnd CapPrm CapEff; do
    say "$set" "$(awk -v s="$set:" '$1 == s { print $2 }' /proc/"$(systemctl show -p MainPID --value keytrail)"/status)"
done

# A read by a reader of this phase's own name (a copy of cat), then wait for its record (the
# records file is written in batches): each phase's record is its own.
read_and_wait() {
    cp /usr/bin/cat "/usr/local/bin/$1"
    "/usr/local/bin/$1" /root/.aws/credentials >/dev/null
    n=0
    while [ $n -lt 30 ]; do
        grep -q "\"comm\":\"$1\"" "$records" 2>/dev/null && return 0
        sleep 1
        n=$((n + 1))
    done
    return 1
}
if read_and_wait kt-first; then say read-recorded; else say read-missing; fi

# A reload re-reads the policy and keeps the process.
pid_before=$(systemctl show -p MainPID --value keytrail)
systemctl reload keytrail && say reloaded
sleep 1
say state-after-reload "$(systemctl show -p ActiveState --value keytrail)"
if [ "$(systemctl show -p MainPID --value keytrail)" = "$pid_before" ]; then
    say same-process
fi
if read_and_wait kt-reloaded; then say read-recorded-after-reload; else say read-missing-after-reload; fi

# A broken policy on reload is refused, and the running one stays.
cp /etc/keytrail/policy.toml /tmp/policy.toml
echo '[[credentials]] broken' >>/etc/keytrail/policy.toml
systemctl reload keytrail
sleep 1
say state-after-broken-reload "$(systemctl show -p ActiveState --value keytrail)"
if [ "$(systemctl show -p MainPID --value keytrail)" = "$pid_before" ]; then
    say same-process-after-broken-reload
fi
cp /tmp/policy.toml /etc/keytrail/policy.toml
if read_and_wait kt-refused; then say read-recorded-after-broken-reload; fi

systemctl stop keytrail
say result "$(systemctl show -p Result --value keytrail)"
say exit-status "$(systemctl show -p ExecMainStatus --value keytrail)"
say records "$(wc -l <"$records" 2>/dev/null || echo 0)"

# What keytrail wrote, for the host to search for the secret and to show on failure.
sed 's/^/KT-SVC-RECORD /' "$records" 2>/dev/null
journalctl -u keytrail --no-pager -o cat | sed 's/^/KT-SVC-JOURNAL /'
say done
systemctl poweroff
