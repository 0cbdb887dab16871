#!/usr/bin/python3
"""GLib oracle for arbor's GVariant encoder (run with /usr/bin/python3, which has gi).

  gv_glib.py gen SEED N   print N random values of every OSTree type, serialised by GLib,
                          as lines "TYPE<TAB>HEX"
  gv_glib.py check        read "TYPE<TAB>HEX" lines (arbor's encoding) on stdin; for each,
                          GLib must see normal form and re-serialise the same bytes.
                          Prints "checked N" and exits 1 on the first mismatch.
"""
import random
import sys

from gi.repository import GLib
from gi.overrides import GLib as _overrides

# PyGObject builds `ay` one byte-variant at a time; build it from the bytes instead.
_overrides._VariantCreator._LEAF_CONSTRUCTORS["ay"] = lambda b: GLib.Variant.new_from_bytes(
    GLib.VariantType("ay"), GLib.Bytes.new(b), True)

OSTREE_TYPES = [
    "(a{sv}aya(say)sstayay)",             # commit
    "(a(say)a(sayay))",                    # dirtree
    "(uuua(ayay))",                        # dirmeta
    "(uuuusa(ayay))",                      # file header
    "(tuuuusa(ayay))",                     # .filez header
    "a{sv}",                               # commitmeta / metadata
    "(a(s(taya{sv}))a{sv})",               # summary
    "(a{sv}tayay(a{sv}aya(say)sstayay)aya(uayttay)a(yaytt))",  # delta superblock
    "(a(uuu)aa(ayay)a(ayay)ay)",           # delta part payload header shapes
]
# Types that appear inside metadata variants.
VARIANT_TYPES = ["s", "b", "t", "u", "y", "i", "x", "q", "n", "d", "as", "ay", "aay", "a{sv}", "(yay)",
                 "a(sssss)", "aa{sv}", "ms", "mu", "(uu)", "()", "a(ss)", "v"]


def split_types(s):
    """Split a tuple body into member type strings."""
    out, i = [], 0
    while i < len(s):
        j = end_of(s, i)
        out.append(s[i:j])
        i = j
    return out


def end_of(s, i):
    c = s[i]
    if c in "am":
        return end_of(s, i + 1)
    if c in "({":
        close = ")" if c == "(" else "}"
        i += 1
        while s[i] != close:
            i = end_of(s, i)
        return i + 1
    return i + 1


def rand_str(r):
    k = r.random()
    if k < 0.01:
        n = r.choice([250, 256, 300, 1000, 70000])
    else:
        n = r.randint(0, 12)
    alphabet = "abcXYZ_-./é☃ 0123456789"
    return "".join(r.choice(alphabet) for _ in range(n))


def rand_bytes(r):
    k = r.random()
    if k < 0.3:
        return r.randbytes(32)
    if k < 0.32:
        return r.randbytes(r.choice([255, 256, 65540]))
    return r.randbytes(r.randint(0, 9))


def rand_len(r):
    return 0 if r.random() < 0.2 else (r.randint(1, 4) if r.random() < 0.9 else r.randint(5, 40))


def rand_value(t, r, depth=0):
    c = t[0]
    if c == "b":
        return r.random() < 0.5
    if c == "y":
        return r.getrandbits(8)
    if c == "n":
        return r.randint(-2**15, 2**15 - 1)
    if c == "q":
        return r.getrandbits(16)
    if c == "i":
        return r.randint(-2**31, 2**31 - 1)
    if c == "u":
        return r.getrandbits(32)
    if c == "x":
        return r.randint(-2**63, 2**63 - 1)
    if c == "t":
        return r.getrandbits(64)
    if c == "d":
        return r.uniform(-1e9, 1e9)
    if c == "s":
        return rand_str(r)
    if c == "v":
        inner = r.choice(VARIANT_TYPES if depth < 3 else ["s", "u", "ay"])
        return GLib.Variant(inner, rand_value(inner, r, depth + 1))
    if c == "m":
        return None if r.random() < 0.3 else rand_value(t[1:], r, depth + 1)
    if c == "a":
        elem = t[1:]
        if elem == "y":
            return rand_bytes(r)
        if elem.startswith("{"):
            k, v = split_types(elem[1:-1])
            d = {}
            for _ in range(rand_len(r)):
                d[rand_value(k, r, depth + 1)] = rand_value(v, r, depth + 1)
            return d
        return [rand_value(elem, r, depth + 1) for _ in range(rand_len(r))]
    if c == "(":
        return tuple(rand_value(m, r, depth + 1) for m in split_types(t[1:-1]))
    raise ValueError(t)


def gen(seed, n):
    r = random.Random(seed)
    out = sys.stdout
    for t in OSTREE_TYPES + VARIANT_TYPES:
        if t == "v":
            continue
        for _ in range(n):
            v = GLib.Variant(t, rand_value(t, r))
            out.write("%s\t%s\n" % (t, v.get_data_as_bytes().get_data().hex()))


def check():
    n = 0
    for line in sys.stdin:
        t, h = line.rstrip("\n").split("\t")
        data = bytes.fromhex(h)
        v = GLib.Variant.new_from_bytes(GLib.VariantType(t), GLib.Bytes.new(data), False)
        if not v.is_normal_form():
            print("not normal form: %s %s" % (t, h[:200]))
            sys.exit(1)
        # Round-trip through GLib's text form: value-level equality, not just framing.
        again = GLib.Variant.parse(GLib.VariantType(t), v.print_(True), None, None)
        if again.get_data_as_bytes().get_data() != data:
            print("GLib re-serialises differently: %s\n ours: %s\n glib: %s"
                  % (t, h[:200], again.get_data_as_bytes().get_data().hex()[:200]))
            sys.exit(1)
        n += 1
    print("checked %d" % n)


if __name__ == "__main__":
    if sys.argv[1] == "gen":
        gen(int(sys.argv[2]), int(sys.argv[3]))
    elif sys.argv[1] == "check":
        check()
    else:
        sys.exit(__doc__)
