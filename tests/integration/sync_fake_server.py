#!/usr/bin/env python3
# A hostile stand-in for `roam serve --stdio STORE`, used by sync_hostile.sh
# through --remote-roam: it serves the real objects and refs of STORE (read
# straight from store.db) but breaks the protocol the way MODE says:
#   badhash   the first object sent has bytes that do not match its hash
#   oversize  the ref list frame claims 4 GiB
#   missing   the head ref names an object the server does not have
#   dotdot    a ref name with '..'
#   othervm   a ref of another VM
#   slash     a ref name with an extra '/' level
#   badkind   a blob sent where a commit was asked for
# Modes starting with 'z' speak protocol 2 (the wire codec: GET answered by
# records in a zstd stream, made with the zstd tool):
#   zbad      the stream is not zstd at all
#   zbase     the first non-commit object comes as a delta against a base
#             the client does not have
#   zbomb     a record claims 4 GiB and 8 MiB of zeros follow
#   zwindow   the stream's window is 128 MiB (over the 32 MiB limit)
#   zhash     the first object's bytes in the stream do not match its hash
# Usage: sync_fake_server.py MODE serve --stdio [--create] STORE
import os, sqlite3, struct, subprocess, sys

mode = sys.argv[1]
store = [a for a in sys.argv[2:] if not a.startswith('-') and a != 'serve'][-1]
inp, out = sys.stdin.buffer, sys.stdout.buffer
db = sqlite3.connect('file:%s/store.db?mode=ro' % store, uri=True)

def frame(t, payload):
    out.write(struct.pack('<B3xI', t, len(payload)) + payload)
    out.flush()

def read_frame():
    h = inp.read(8)
    if len(h) < 8:
        sys.exit(0)
    t, n = struct.unpack('<B3xI', h)
    return t, inp.read(n)

def zstd(data, *args):
    return subprocess.run(['zstd', '-q', '-c'] + list(args), input=data,
                          stdout=subprocess.PIPE, check=True).stdout

def record(kind, body, base=None):
    return struct.pack('<BBI', kind, 1 if base else 0, len(body)) + (base or b'') + body

def wire_answer(rows):
    """Protocol 2 GET answer: records of raw objects in one zstd frame."""
    global sent_bad
    stream = b''
    for kind, size, codec, data in rows:
        raw = bytes(data) if codec == 0 else subprocess.run(
            ['zstd', '-q', '-d', '-c'], input=bytes(data), stdout=subprocess.PIPE, check=True).stdout
        if mode == 'zhash' and not sent_bad:
            raw = bytearray(raw)
            raw[len(raw) // 2] ^= 0x55
            raw = bytes(raw)
            sent_bad = True
        if mode == 'zbase' and not sent_bad and kind != 4:
            stream += record(kind, zstd(raw), os.urandom(32))
            sent_bad = True
            continue
        stream += record(kind, raw)
    if mode == 'zbomb':
        stream = struct.pack('<BBI', 1, 0, 0xffffffff) + bytes(8 << 20)
    if mode == 'zbad':
        z = os.urandom(300)
    elif mode == 'zwindow':
        z = zstd(stream, '--long=27')
    else:
        z = zstd(stream)
    for i in range(0, len(z), 1 << 20):
        frame(14, z[i:i + (1 << 20)])

t, p = read_frame()
version = 2 if mode.startswith('z') else 1
frame(1, b'ROAMSYNC' + struct.pack('<HHB', version, 0, 4) + b'fake')
sent_bad = False
while True:
    t, p = read_frame()
    if t == 3:  # LIST
        vm = p.decode()
        refs = db.execute("SELECT name, hash FROM refs WHERE name LIKE ? ORDER BY name",
                          ('vms/%s/%%' % vm,)).fetchall()
        refs = [(n, bytes(h)) for n, h in refs]
        if mode == 'missing':
            refs = [(n, os.urandom(32) if n.endswith('/head') else h) for n, h in refs]
        elif mode == 'dotdot':
            refs.append(('vms/%s/../other/head' % vm, refs[0][1]))
        elif mode == 'othervm':
            refs.append(('vms/other/head', refs[0][1]))
        elif mode == 'slash':
            refs.append(('vms/%s/checkpoints/a/b' % vm, refs[0][1]))
        body = b''.join(struct.pack('<H', len(n)) + n.encode() + h for n, h in refs)
        payload = struct.pack('<BI', 0, len(refs)) + body
        if mode == 'oversize':
            out.write(struct.pack('<B3xI', 4, 0xfffffff0) + payload)
            out.flush()
            continue
        frame(4, payload)
    elif t == 15:  # PLAN: no basis here
        continue
    elif t == 7 and version == 2:  # GET, protocol 2
        rows = []
        for i in range(0, len(p), 32):
            row = db.execute("SELECT kind, size, codec, data FROM objects WHERE hash = ?",
                             (p[i:i + 32],)).fetchone()
            if row is None:
                frame(2, struct.pack('<I', 2) + b'object not found')
                sys.exit(1)
            rows.append(row)
        wire_answer(rows)
    elif t == 7:  # GET
        for i in range(0, len(p), 32):
            h = p[i:i + 32]
            row = db.execute("SELECT kind, size, codec, data FROM objects WHERE hash = ?",
                             (h,)).fetchone()
            if row is None:
                msg = b'object %s not found' % h.hex().encode()
                frame(2, struct.pack('<I', 2) + msg)
                sys.exit(1)
            kind, size, codec, data = row
            data = bytearray(data)
            if mode == 'badhash' and not sent_bad:
                data[len(data) // 2] ^= 0x55
                sent_bad = True
            if mode == 'badkind' and kind == 4:
                kind = 1
            frame(8, h + struct.pack('<BBHQ', kind, codec, 0, size) + bytes(data))
    elif t == 13:
        sys.exit(0)
    else:
        frame(2, struct.pack('<I', 95) + b'fake server: unsupported')
        sys.exit(1)
