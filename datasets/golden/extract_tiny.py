#!/usr/bin/env python3
"""Cut small tensor vectors out of the shared tiny GGUF models (../shared/golden) into tiny-tensors.json.

Each entry pairs an F16 source tensor of tiny-f16.gguf with what upstream's quantizers wrote for it:
llama.cpp c392e509 (tiny-tq2.gguf: TQ2_0 weights, Q6_K token embedding) and bitnet.cpp c82b5e6 /
fork 406a5036 (tiny-i2s.gguf: I2_S, fork type id 36). Run: python3 extract_tiny.py ../../../shared/golden
"""
import json
import struct
import sys

SCALAR = {0: 'B', 1: 'b', 2: 'H', 3: 'h', 4: 'I', 5: 'i', 6: 'f', 7: '?', 10: 'Q', 11: 'q', 12: 'd'}


def read(f, fmt):
    return struct.unpack('<' + fmt, f.read(struct.calcsize('<' + fmt)))[0]


def read_str(f):
    return f.read(read(f, 'Q')).decode()


def read_value(f, t):
    if t in SCALAR:
        return read(f, SCALAR[t])
    if t == 8:
        return read_str(f)
    if t == 9:
        et, n = read(f, 'I'), read(f, 'Q')
        return [read_value(f, et) for _ in range(n)]
    raise ValueError(f'unknown GGUF value type {t}')


def tensors(path):
    """name -> (dims, type, absolute offset), and the file's bytes."""
    with open(path, 'rb') as f:
        assert f.read(4) == b'GGUF'
        read(f, 'I')
        n_tensors, n_kv = read(f, 'Q'), read(f, 'Q')
        kv = {}
        for _ in range(n_kv):
            key = read_str(f)
            kv[key] = read_value(f, read(f, 'I'))
        infos = {}
        for _ in range(n_tensors):
            name = read_str(f)
            dims = [read(f, 'Q') for _ in range(read(f, 'I'))]
            infos[name] = (dims, read(f, 'I'), read(f, 'Q'))
        align = kv.get('general.alignment', 32)
        base = (f.tell() + align - 1) // align * align
        f.seek(0)
        data = f.read()
    return {n: (d, t, base + o) for n, (d, t, o) in infos.items()}, data


def main(root):
    f16, f16_data = tensors(f'{root}/tiny-f16.gguf')
    tq2, tq2_data = tensors(f'{root}/tiny-tq2.gguf')
    i2s, i2s_data = tensors(f'{root}/tiny-i2s.gguf')
    out = {'source': 'shared/golden tiny-f16/tiny-tq2/tiny-i2s.gguf, cut by extract_tiny.py', 'tensors': []}
    for name in ['blk.0.attn_k.weight', 'blk.1.attn_output.weight']:
        (cols, rows), _, off = f16[name]
        n = rows * cols
        (_, t_tq2, off_tq2), (_, t_i2s, off_i2s) = tq2[name], i2s[name]
        assert (t_tq2, t_i2s) == (35, 36)
        out['tensors'].append({
            'name': name, 'rows': rows, 'cols': cols,
            'f16_hex': f16_data[off:off + 2 * n].hex(),
            'tq2_0_hex': tq2_data[off_tq2:off_tq2 + n // 256 * 66].hex(),
            'i2_s_hex': i2s_data[off_i2s:off_i2s + n // 4 + 32].hex(),
        })
    # The first 16 rows of the token embedding, which llama.cpp's quantizer wrote as Q6_K.
    (cols, _), _, off = f16['token_embd.weight']
    (_, t_emb, off_emb) = tq2['token_embd.weight']
    assert t_emb == 14
    rows = 16
    out['embedding_q6_K'] = {
        'name': 'token_embd.weight (rows 0..16)', 'rows': rows, 'cols': cols,
        'f16_hex': f16_data[off:off + 2 * rows * cols].hex(),
        'q6_K_hex': tq2_data[off_emb:off_emb + rows * cols // 256 * 210].hex(),
    }
    json.dump(out, sys.stdout, indent=1)


if __name__ == '__main__':
    main(sys.argv[1] if len(sys.argv) > 1 else '../../../shared/golden')
