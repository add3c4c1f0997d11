#!/usr/bin/python3
"""A minimal CRI client: runs one pod the way the kubelet does for a pod
whose RuntimeClass has `handler: rrun`, and prints what it saw.

    cri.py SOCKET HANDLER IMAGE CGROUP_PARENT [CHECK_COMMAND...]
    cri.py SOCKET CALL ARGS...      (one call; see "Single calls" below)

RunPodSandbox (runtime_handler=HANDLER, host network: no CNI needed),
CreateContainer + StartContainer (IMAGE, a long sleep), ExecSync (prints the
exec's stdout and exit code), then StopPodSandbox + RemovePodSandbox. Prints
`sandbox ID`, `container ID`, `exec-exit N`, `exec-stdout ...` lines; while
the container runs, CHECK_COMMAND (with `{container}` replaced by the
container's id) runs and its output is printed as `check ...` lines. Exits
non-zero on the first failed call, with the gRPC status on stderr.

Single calls, one CRI call each as the kubelet makes them (for the engine
suite's step-by-step scenarios); each prints what a CLI would, exits 0, or
125 with "cri.py: METHOD: STATUS: details" on stderr when the call fails:

    runp HANDLER NAME CGROUP_PARENT LOG_DIR     RunPodSandbox; prints its id
    create [--memory BYTES] [--cpu-quota US --cpu-period US]
           SANDBOX NAME CGROUP_PARENT LOG_DIR IMAGE CMD...
                                    CreateContainer (log file LOG_DIR/main.log,
                                    the sandbox config as runp sent it); its id
    start ID                        StartContainer
    exec ID CMD...                  ExecSync: the command's stdout and stderr,
                                    and its exit code as cri.py's
    stop ID TIMEOUT                 StopContainer (SIGTERM, SIGKILL after
                                    TIMEOUT seconds)
    rm ID                           RemoveContainer
    status ID                       ContainerStatus: "STATE PID EXIT_CODE"
                                    (created, running, exited, unknown)
    stopp ID / rmp ID               StopPodSandbox / RemovePodSandbox

    cri.py SOCKET serve

runs single calls without starting Python and gRPC anew for each (seconds
under an emulated CPU): each line on stdin is a JSON array of a call's
arguments, each answer one line of JSON, {"code": N, "stdout": "...",
"stderr": "..."}, as the call would have exited and printed.

Needs only python3-grpcio: the few protobuf messages are encoded by hand
(field numbers from k8s.io/cri-api runtime/v1 api.proto), so no generated
code or protoc is needed.
"""
import argparse
import io
import json
import subprocess
import sys

import grpc


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(num, value):
    """Encode one field: int -> varint, str/bytes -> length-delimited."""
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int):
        return varint(num << 3 | 0) + varint(value)
    if isinstance(value, str):
        value = value.encode()
    return varint(num << 3 | 2) + varint(len(value)) + value


def msg(*fields):
    return b"".join(field(n, v) for n, v in fields if v is not None)


def parse(data):
    """Decode one message level into {field: [values]} (bytes or int)."""
    out, i = {}, 0
    while i < len(data):
        key, i = read_varint(data, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            v, i = read_varint(data, i)
        elif wire == 2:
            n, i = read_varint(data, i)
            v, i = data[i:i + n], i + n
        elif wire == 1:
            v, i = data[i:i + 8], i + 8
        elif wire == 5:
            v, i = data[i:i + 4], i + 4
        else:
            raise ValueError("wire type %d" % wire)
        out.setdefault(num, []).append(v)
    return out


def read_varint(data, i):
    n = shift = 0
    while True:
        b = data[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


NODE = 2  # NamespaceMode: the host's network namespace, so no CNI
POD = 0
STATES = {0: "created", 1: "running", 2: "exited", 3: "unknown"}


CHANNELS = {}


def connect(sock, fail_code):
    """A function that makes one RuntimeService call and returns the parsed
    reply; on an error it prints the gRPC status and exits with fail_code."""
    channel = CHANNELS.get(sock)
    if channel is None:
        channel = grpc.insecure_channel("unix://" + sock)
        grpc.channel_ready_future(channel).result(timeout=30)
        CHANNELS[sock] = channel

    def call(method, request, timeout=60):
        rpc = channel.unary_unary(
            "/runtime.v1.RuntimeService/" + method,
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )
        try:
            return parse(rpc(request, timeout=timeout))
        except grpc.RpcError as e:
            prefix = "cri.py: " if fail_code != 1 else ""
            sys.stderr.write("%s%s: %s: %s\n" % (prefix, method, e.code().name, e.details()))
            sys.exit(fail_code)

    return call


def sandbox_config(name, cgroup_parent, log_dir=None):
    """The PodSandboxConfig of pod NAME: the host's network (no CNI), its
    own pid and ipc namespaces, CGROUP_PARENT as linux.cgroup_parent (a
    systemd slice name such as kubepods-pod1.slice with SystemdCgroup, as
    the kubelet's systemd driver sends it; a path with cgroupfs)."""
    return msg(
        (1, msg((1, name), (2, name + "-uid"), (3, "default"), (4, 0))),  # metadata
        # no hostname: with the host's network the pod has the host's UTS namespace
        (3, log_dir),  # log_directory
        (8, msg(  # linux
            (1, cgroup_parent),
            (2, msg((1, msg((1, NODE), (2, POD), (3, POD))))),  # security_context.namespace_options
        )),
    )


def single_call(sock, argv):
    """One CRI call from the command line (see the module's docstring)."""
    call = connect(sock, 125)
    p = argparse.ArgumentParser(prog="cri.py SOCKET")
    sub = p.add_subparsers(dest="call", required=True)
    s = sub.add_parser("runp")
    s.add_argument("handler")
    s.add_argument("name")
    s.add_argument("cgroup_parent")
    s.add_argument("log_dir")
    s = sub.add_parser("create")
    s.add_argument("sandbox")
    s.add_argument("name")
    s.add_argument("cgroup_parent")
    s.add_argument("log_dir")
    s.add_argument("image")
    s.add_argument("--memory", type=int, default=0)
    s.add_argument("--cpu-quota", type=int, default=0)
    s.add_argument("--cpu-period", type=int, default=0)
    # HOST:CONTAINER[:ro], a hostPath volume as the kubelet hands it over
    s.add_argument("--mount", action="append", default=[])
    s.add_argument("cmd", nargs=argparse.REMAINDER)
    for name in ("start", "rm", "status", "stopp", "rmp"):
        sub.add_parser(name).add_argument("id")
    s = sub.add_parser("exec")
    s.add_argument("id")
    s.add_argument("cmd", nargs=argparse.REMAINDER)
    s = sub.add_parser("stop")
    s.add_argument("id")
    s.add_argument("timeout", type=int)
    a = p.parse_args(argv)

    if a.call == "runp":
        r = call("RunPodSandbox", msg((1, sandbox_config(a.name, a.cgroup_parent, a.log_dir)),
                                      (2, a.handler)))
        print(r[1][0].decode())
    elif a.call == "create":
        resources = msg(
            (1, a.cpu_period or None),
            (2, a.cpu_quota or None),
            (4, a.memory or None),  # memory_limit_in_bytes
        )
        cmd = a.cmd[1:] if a.cmd[:1] == ["--"] else a.cmd
        mounts = []
        for m in a.mount:
            host, ctr, *mode = m.split(":")
            # Mount: container_path 1, host_path 2, readonly 3
            mounts.append((7, msg((1, ctr), (2, host), (3, mode == ["ro"] or None))))
        container_config = msg(
            (1, msg((1, "main"), (2, 0))),  # metadata
            (2, msg((1, a.image))),  # image
            (3, cmd[0]),  # command
            *[(4, arg) for arg in cmd[1:]],  # args
            *mounts,
            (11, "main.log"),  # log_path, under the pod's log_directory
            (15, msg((1, resources))),  # linux.resources
        )
        config = sandbox_config(a.name, a.cgroup_parent, a.log_dir)
        r = call("CreateContainer", msg((1, a.sandbox), (2, container_config), (3, config)))
        print(r[1][0].decode())
    elif a.call == "start":
        call("StartContainer", msg((1, a.id)))
    elif a.call == "exec":
        cmd = a.cmd[1:] if a.cmd[:1] == ["--"] else a.cmd
        r = call("ExecSync", b"".join([field(1, a.id)] + [field(2, c) for c in cmd]
                                      + [field(3, 60)]), timeout=90)
        sys.stdout.write(r.get(1, [b""])[0].decode(errors="replace"))
        sys.stderr.write(r.get(2, [b""])[0].decode(errors="replace"))
        sys.exit(r.get(3, [0])[0])
    elif a.call == "stop":
        call("StopContainer", msg((1, a.id), (2, a.timeout)), timeout=a.timeout + 60)
    elif a.call == "rm":
        call("RemoveContainer", msg((1, a.id)))
    elif a.call == "status":
        r = call("ContainerStatus", msg((1, a.id), (2, True)))  # verbose: the pid
        status = parse(r[1][0])
        state = STATES.get(status.get(3, [3])[0], "unknown")
        code = status.get(7, [0])[0]
        pid = 0
        for entry in r.get(2, []):
            kv = parse(entry)
            if kv.get(1, [b""])[0] == b"info":
                pid = json.loads(kv[2][0]).get("pid", 0)
        print(state, pid, code)
    elif a.call == "stopp":
        call("StopPodSandbox", msg((1, a.id)))
    elif a.call == "rmp":
        call("RemovePodSandbox", msg((1, a.id)))


CALLS = ("runp", "create", "start", "exec", "stop", "rm", "status", "stopp", "rmp")


def serve(sock):
    """Single calls from stdin, one JSON array a line; answers on stdout."""
    out = sys.stdout
    for line in sys.stdin:
        if not line.strip():
            continue
        sys.stdout, sys.stderr = io.StringIO(), io.StringIO()
        code = 0
        try:
            single_call(sock, json.loads(line))
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
        except Exception as e:  # a bug here, not a CRI error: say so
            sys.stderr.write("cri.py: %s: %s\n" % (type(e).__name__, e))
            code = 2
        answer = {"code": code, "stdout": sys.stdout.getvalue(), "stderr": sys.stderr.getvalue()}
        sys.stdout, sys.stderr = out, sys.__stderr__
        out.write(json.dumps(answer) + "\n")
        out.flush()


def main():
    if len(sys.argv) > 2 and sys.argv[2] in CALLS:
        single_call(sys.argv[1], sys.argv[2:])
        return
    if len(sys.argv) == 3 and sys.argv[2] == "serve":
        serve(sys.argv[1])
        return
    sock, handler, image, cgroup_parent = sys.argv[1:5]
    check = sys.argv[5:]
    call = connect(sock, 1)
    sandbox_config_ = sandbox_config("rrun-pod", cgroup_parent)
    r = call("RunPodSandbox", msg((1, sandbox_config_), (2, handler)))
    sandbox = r[1][0].decode()
    print("sandbox", sandbox, flush=True)
    try:
        container_config = msg(
            (1, msg((1, "main"), (2, 0))),  # metadata
            (2, msg((1, image))),  # image
            (3, "sh"), (4, "-c"), (4, "echo started; exec sleep 100000"),
        )
        r = call("CreateContainer", msg((1, sandbox), (2, container_config), (3, sandbox_config_)))
        container = r[1][0].decode()
        print("container", container, flush=True)
        call("StartContainer", msg((1, container)))
        if check:
            argv = [a.replace("{container}", container) for a in check]
            p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=30)
            for line in p.stdout.decode(errors="replace").splitlines():
                print("check", line)
            print("check-exit", p.returncode, flush=True)
        r = call("ExecSync", b"".join([
            field(1, container),
            field(2, "sh"), field(2, "-c"),
            field(2, "echo exec-in-pod; ps -o args; exit 3"),
            field(3, 30),
        ]))
        out = r.get(1, [b""])[0].decode(errors="replace")
        code = r.get(3, [0])[0]
        print("exec-exit", code)
        for line in out.splitlines():
            print("exec-stdout", line)
        sys.stdout.flush()
    finally:
        call("StopPodSandbox", msg((1, sandbox)))
        call("RemovePodSandbox", msg((1, sandbox)))
        print("removed", sandbox, flush=True)


if __name__ == "__main__":
    main()
