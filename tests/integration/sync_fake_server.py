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
# Usage: sync_fake_server.py MODE serve --stdio [--create] STORE
import os, sqlite3, struct, sys

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

t, p = read_frame()
frame(1, b'ROAMSYNC' + struct.pack('<HHB', 1, 0, 4) + b'fake')
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
