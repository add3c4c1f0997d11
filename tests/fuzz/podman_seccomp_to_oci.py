#!/usr/bin/env python3
"""Turns a Podman/Docker seccomp.json (containers-common) into the OCI
`linux.seccomp` object a runtime sees for an amd64 container with Podman's
default capabilities: `includes`/`excludes` on arches and caps are resolved,
`archMap` becomes `architectures`, and the non-OCI fields are dropped.

    apt-get download golang-github-containers-common
    dpkg-deb -x golang-github-containers-common_*.deb cc
    python3 podman_seccomp_to_oci.py cc/usr/share/containers/seccomp.json \
        > seeds/seccomp/podman-default-amd64.json
"""
import json
import sys

ARCH = "amd64"
CAPS = {
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_NET_BIND_SERVICE", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP",
    "CAP_SETUID", "CAP_SYS_CHROOT",
}


def applies(rule):
    inc, exc = rule.get("includes") or {}, rule.get("excludes") or {}
    if inc.get("arches") and ARCH not in inc["arches"]:
        return False
    if inc.get("caps") and not set(inc["caps"]) <= CAPS:
        return False
    if ARCH in (exc.get("arches") or []):
        return False
    if set(exc.get("caps") or []) & CAPS:
        return False
    return True


def main():
    src = json.load(open(sys.argv[1]))
    out = {"defaultAction": src["defaultAction"]}
    if "defaultErrnoRet" in src:
        out["defaultErrnoRet"] = src["defaultErrnoRet"]
    for m in src.get("archMap") or []:
        if m["architecture"] == "SCMP_ARCH_X86_64":
            out["architectures"] = [m["architecture"]] + m["subArchitectures"]
    out["syscalls"] = []
    for rule in src["syscalls"]:
        if not applies(rule):
            continue
        r = {"names": rule["names"], "action": rule["action"]}
        if rule.get("errnoRet") is not None:
            r["errnoRet"] = rule["errnoRet"]
        if rule.get("args"):
            r["args"] = [
                {k: a[k] for k in ("index", "value", "valueTwo", "op") if k in a}
                for a in rule["args"]
            ]
        out["syscalls"].append(r)
    json.dump(out, sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
