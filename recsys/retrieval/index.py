"""Nearest-neighbour search over item vectors (inner product): the serving side of two-tower retrieval.

`TwoTowerModel.item_embeddings` go in, user vectors query it; `TwoTowerSource` (sources.py) maps the returned
positions back to catalogue items. Exact search (faiss.IndexFlatIP) is used up to `exact_max_items`, since
below ~50k items a flat scan is a few ms and has perfect recall; above that, HNSW (graph, no training) or IVF
(clustered, needs training) trade a little recall for sub-linear latency.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import faiss
import numpy as np

KINDS = ("exact", "hnsw", "ivf")


def default_threads() -> int:
    """CPUs this process may use (cgroup/affinity aware where the OS says so)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def set_threads(n: int | None = None) -> None:
    """Faiss OpenMP threads (process-wide). Parallelism is over queries, so batch search benefits and a
    single query is unaffected; pass 1 in a server that already runs one request per core."""
    faiss.omp_set_num_threads(int(n or default_threads()))


class AnnIndex:
    """Inner-product top-k over a fixed set of item vectors; positions index `ids`."""

    def __init__(self, index: "faiss.Index", ids, kind: str, params: dict | None = None):
        self.index, self.kind, self.params = index, kind, dict(params or {})
        self.ids = np.asarray(ids, dtype=str)
        if len(self.ids) != index.ntotal:
            raise ValueError(f"{len(self.ids)} ids for an index of {index.ntotal} vectors")

    @classmethod
    def build(cls, embeddings: np.ndarray, ids, kind: str = "auto", exact_max_items: int = 50_000,
              hnsw_m: int = 32, ef_search: int = 128, ef_construction: int = 200, nlist: int | None = None,
              nprobe: int = 16, threads: int | None = None) -> "AnnIndex":
        """kind: "exact" | "hnsw" | "ivf" | "auto" (exact up to exact_max_items vectors, else hnsw)."""
        x = np.ascontiguousarray(embeddings, dtype=np.float32)
        if x.ndim != 2 or not len(x):
            raise ValueError(f"embeddings must be a non-empty 2-D array, got shape {x.shape}")
        if len(ids) != len(x):
            raise ValueError(f"{len(ids)} ids for {len(x)} embeddings")
        if not np.isfinite(x).all():
            raise ValueError("embeddings contain NaN or inf")
        if kind == "auto":
            kind = "exact" if len(x) <= exact_max_items else "hnsw"
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS + ('auto',)}, got {kind!r}")
        set_threads(threads)
        d, params = x.shape[1], {}
        if kind == "exact":
            index = faiss.IndexFlatIP(d)
        elif kind == "hnsw":
            index = faiss.IndexHNSWFlat(d, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = ef_construction
            params = {"hnsw_m": hnsw_m, "ef_search": ef_search, "ef_construction": ef_construction}
        else:
            # ~4 sqrt(n) lists, and at least ~39 training points per centroid (faiss warns below that).
            nlist = int(nlist or max(1, min(4 * int(np.sqrt(len(x))), len(x) // 39)))
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
            index.train(x)
            params = {"nlist": nlist, "nprobe": nprobe}
        index.add(x)
        return cls(index, ids, kind, params)

    def add(self, embeddings: np.ndarray, ids) -> None:
        """Append vectors (new catalogue items, e.g. from TwoTowerModel.embed_items). Exact and HNSW
        indexes take them as they are; IVF assigns them to its trained lists."""
        x = np.ascontiguousarray(np.atleast_2d(embeddings), dtype=np.float32)
        if x.shape[1] != self.dim or len(ids) != len(x) or not np.isfinite(x).all():
            raise ValueError(f"need finite [n, {self.dim}] vectors and n ids, got {x.shape} and {len(ids)} ids")
        self.index.add(x)
        self.ids = np.concatenate([self.ids, np.asarray(ids, dtype=str)])

    def _search_params(self, k: int):
        """Per-call search parameters (thread-safe: nothing on the shared index is mutated)."""
        if self.kind == "hnsw":  # HNSW returns at most efSearch results, so the beam is at least k
            return faiss.SearchParametersHNSW(efSearch=max(int(self.params.get("ef_search", 128)), k))
        if self.kind == "ivf":
            return faiss.SearchParametersIVF(nprobe=int(self.params.get("nprobe", 16)))
        return None

    def __len__(self) -> int:
        return int(self.index.ntotal)

    @property
    def dim(self) -> int:
        return int(self.index.d)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k by inner product: (scores float32 [n, k], positions int64 [n, k]) best first; k is clipped
        to the catalogue size, and rows the approximate index could not fill are completed exactly, so
        callers never see -1 positions."""
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if q.shape[1] != self.dim:
            raise ValueError(f"queries have dim {q.shape[1]}, index has {self.dim}")
        k = int(min(max(k, 0), len(self)))
        if k == 0 or not len(q):
            return np.zeros((len(q), k), np.float32), np.zeros((len(q), k), np.int64)
        params = self._search_params(k)
        scores, pos = self.index.search(q, k, params=params) if params else self.index.search(q, k)
        bad = (pos < 0).any(axis=1)
        if bad.any():  # IVF probing too few lists / HNSW unreachable nodes: exact fallback for those rows
            scores[bad], pos[bad] = self._exact(q[bad], k)
        return scores.astype(np.float32, copy=False), pos.astype(np.int64, copy=False)

    def _exact(self, q: np.ndarray, k: int):
        x = self.index.reconstruct_n(0, len(self)) if self.kind != "ivf" else self._ivf_vectors()
        s = q @ x.T
        part = np.argpartition(-s, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(s, part, 1), axis=1, kind="stable")
        pos = np.take_along_axis(part, order, 1)
        return np.take_along_axis(s, pos, 1), pos

    def _ivf_vectors(self) -> np.ndarray:
        self.index.make_direct_map()  # IVF needs a direct map before vectors can be reconstructed
        return self.index.reconstruct_n(0, len(self))

    def save(self, path) -> Path:
        """Directory with index.faiss, ids.npy and meta.json."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self.index, str(path / "index.faiss"))
        np.save(path / "ids.npy", self.ids, allow_pickle=False)
        meta = {"format": "recsys.ann_index/1", "kind": self.kind, "params": self.params,
                "n": len(self), "dim": self.dim}
        (path / "meta.json").write_text(json.dumps(meta, indent=1))
        return path

    @classmethod
    def load(cls, path, threads: int | None = None) -> "AnnIndex":
        path = Path(path)
        meta = json.loads((path / "meta.json").read_text())
        set_threads(threads)
        index = faiss.read_index(str(path / "index.faiss"))
        return cls(index, np.load(path / "ids.npy", allow_pickle=False), meta["kind"], meta["params"])
