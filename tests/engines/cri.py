#!/usr/bin/python3
"""A minimal CRI client: runs one pod the way the kubelet does for a pod
whose RuntimeClass has `handler: rrun`, and prints what it saw.

    cri.py SOCKET HANDLER IMAGE CGROUP_PARENT [CHECK_COMMAND...]

RunPodSandbox (runtime_handler=HANDLER, host network: no CNI needed),
CreateContainer + StartContainer (IMAGE, a long sleep), ExecSync (prints the
exec's stdout and exit code), then StopPodSandbox + RemovePodSandbox. Prints
`sandbox ID`, `container ID`, `exec-exit N`, `exec-stdout ...` lines; while
the container runs, CHECK_COMMAND (with `{container}` replaced by the
container's id) runs and its output is printed as `check ...` lines. Exits
non-zero on the first failed call, with the gRPC status on stderr.

Needs only python3-grpcio: the few protobuf messages are encoded by hand
(field numbers from k8s.io/cri-api runtime/v1 api.proto), so no generated
code or protoc is needed.
"""
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


def main():
    sock, handler, image, cgroup_parent = sys.argv[1:5]
    check = sys.argv[5:]
    channel = grpc.insecure_channel("unix://" + sock)
    grpc.channel_ready_future(channel).result(timeout=30)

    def call(method, request, timeout=60):
        rpc = channel.unary_unary(
            "/runtime.v1.RuntimeService/" + method,
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )
        try:
            return parse(rpc(request, timeout=timeout))
        except grpc.RpcError as e:
            sys.stderr.write("%s: %s: %s\n" % (method, e.code().name, e.details()))
            sys.exit(1)

    NODE = 2  # NamespaceMode: the host's network namespace, so no CNI
    POD = 0
    sandbox_config = msg(
        (1, msg((1, "rrun-pod"), (2, "rrun-pod-uid"), (3, "default"), (4, 0))),  # metadata
        # no hostname: with the host's network the pod has the host's UTS namespace
        (8, msg(  # linux
            (1, cgroup_parent),
            (2, msg((1, msg((1, NODE), (2, POD), (3, POD))))),  # security_context.namespace_options
        )),
    )
    r = call("RunPodSandbox", msg((1, sandbox_config), (2, handler)))
    sandbox = r[1][0].decode()
    print("sandbox", sandbox, flush=True)
    try:
        container_config = msg(
            (1, msg((1, "main"), (2, 0))),  # metadata
            (2, msg((1, image))),  # image
            (3, "sh"), (4, "-c"), (4, "echo started; exec sleep 100000"),
        )
        r = call("CreateContainer", msg((1, sandbox), (2, container_config), (3, sandbox_config)))
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
