"""Lifelong (task-free) streams composed of segments (Ling & Bohn 2021's tests for a lifelong
learner: no forgetting, forward and backward transfer, few-shot learning).

A segment is a span of the stream of one type:

- ``classes``: a class set (a class-incremental step), in the original input domain;
- ``revisit``: an earlier segment's concept again (same accuracy-matrix column);
- ``drift``: a gradual mixture from concept A to concept B over the segment: at offset t of W
  the sample comes from B with probability t/W (``linear``) or Phi((t/W - centre) / width)
  (``gaussian``), one uniform draw per position from the chunk's generator;
- ``domain``: an earlier segment's classes under a seeded input transform (domains.py);
- ``few_shot``: new classes with ``shots`` training examples each, passed ``repeat`` times;
- ``related``: a concept declared related to an earlier one, either sibling classes in the
  label tree (``relation: siblings``) or the same classes in a new domain (``relation: domain``),
  so that forward/backward transfer has something to measure.

A concept is (class set, domain) and is one column of the accuracy matrix; rows are taken at
segment ends. Each concept serves its samples in keyed random passes (a permutation per pass),
continuing where its previous segment stopped, so a sample's first exposure is its concept's
first pass; a drift segment advances both concepts' sequences at every position.
"""

from __future__ import annotations

import json

import numpy as np

from clenv.config.schema import Field, validate
from clenv.data.pool import Pool
from clenv.errors import ConfigError
from clenv.scenarios.domains import DomainTransform, validate_domain
from clenv.scenarios.incremental import COMMON_FIELDS, check_stream_keys
from clenv.scenarios.permutation import keyed_permutation, round_keys
from clenv.scenarios.stream import Stream

SEGMENT_TYPES = ("classes", "revisit", "drift", "domain", "few_shot", "related")

LIFELONG_FIELDS: dict[str, Field] = {
    "generator": Field(str, "lifelong", "the stream generator"),
    # the stream-level keys of every generator (a task is a segment here)
    **{k: COMMON_FIELDS[k] for k in ("seed", "batch_size", "chunk_size", "boundaries",
                                     "task_ids")},
    "transfer_k": Field(int, 100, "default k of related pairs: forward transfer is measured "
                        "after the first k samples of the related segment", min=1),
    "segments": Field(list, doc="the segments, in stream order"),
}

_COMMON = {"type": Field(str, doc="segment type", choices=SEGMENT_TYPES),
           "name": Field(str, None, "a name to refer to the segment and label its column"),
           "length": Field(int, doc="samples in the segment", min=1)}
_REF = (int, str)
SEGMENT_FIELDS: dict[str, dict[str, Field]] = {
    "classes": {**_COMMON, "classes": Field(list, doc="class ids", item=int)},
    "revisit": {**_COMMON, "of": Field(object, doc="an earlier segment (index or name)")},
    "drift": {**_COMMON, "from": Field(object, doc="the concept drifted from (a segment)"),
              "to": Field(object, doc="the concept drifted to (a segment)"),
              "schedule": Field(str, "linear", "P(to) over the segment",
                                choices=("linear", "gaussian")),
              "centre": Field(float, 0.5, "gaussian: centre as a fraction of the segment",
                              min=0, max=1),
              "width": Field(float, 0.15, "gaussian: width as a fraction of the segment",
                             min=1e-6)},
    "domain": {**_COMMON, "of": Field(object, doc="the segment whose classes are shown"),
               "domain": Field(dict, doc="the input transform (kind, seed, ...)")},
    "few_shot": {"type": _COMMON["type"], "name": _COMMON["name"],
                 "classes": Field(list, doc="the new class ids", item=int),
                 "shots": Field(int, 5, "training examples per class", min=1),
                 "repeat": Field(int, 1, "passes over the examples", min=1)},
    "related": {**_COMMON, "to": Field(object, doc="the earlier segment it is related to"),
                "relation": Field(str, doc="siblings: sibling classes in the label tree; "
                                  "domain: the same classes in a new domain",
                                  choices=("siblings", "domain")),
                "classes": Field(object, "auto", "siblings: class ids, or auto (the first "
                                 "unused sibling of each class, from the label tree)"),
                "domain": Field(dict, None, "relation domain: the input transform"),
                "k": Field(int, None, "forward transfer after k samples (default: "
                           "scenario.transfer_k)", min=1)},
}


def _ref(value, segs: list[dict], i: int, key: str) -> int:
    """Resolve a reference to an earlier segment that defines a concept."""
    if isinstance(value, bool) or not isinstance(value, _REF):
        raise ConfigError(key, f"expected an earlier segment's index or name, got {value!r}")
    if isinstance(value, str):
        idx = next((j for j, s in enumerate(segs[:i]) if s.get("name") == value), None)
        if idx is None:
            raise ConfigError(key, f"no earlier segment named {value!r}",
                              "name the segment (name: ...) before referring to it")
    else:
        idx = value if value >= 0 else i + value
        if not 0 <= idx < i:
            raise ConfigError(key, f"segment {value} is not an earlier segment",
                              f"use an index in [0, {i}) or a name")
    if segs[idx]["type"] == "drift":
        raise ConfigError(key, f"segment {idx} is a drift and defines no concept",
                          "refer to a segment with a concept")
    return idx


def validate_lifelong(section: dict, key: str = "scenario") -> dict:
    """Validate the scenario and every segment (structure and references; class ids are
    checked against the pool when the stream is built)."""
    cfg = validate(section, LIFELONG_FIELDS, key)
    raw = cfg["segments"]
    if not raw:
        raise ConfigError(f"{key}.segments", "expected at least one segment")
    segs: list[dict] = []
    for i, seg in enumerate(raw):
        skey = f"{key}.segments[{i}]"
        if not isinstance(seg, dict):
            raise ConfigError(skey, f"expected a mapping, got {seg!r}")
        kind = seg.get("type")
        if kind not in SEGMENT_TYPES:
            raise ConfigError(f"{skey}.type", f"expected one of {', '.join(SEGMENT_TYPES)}, "
                              f"got {kind!r}")
        derived = seg.get("length") if kind == "few_shot" else None  # a resolved config's
        s = validate({k: v for k, v in seg.items() if k != "length" or derived is None},
                     SEGMENT_FIELDS[kind], skey)
        for ref in ("of", "to", "from"):
            if ref in s and not (kind == "related" and ref == "from"):
                s[ref] = _ref(s[ref], segs, i, f"{skey}.{ref}")
        if kind == "drift" and s["from"] == s["to"]:
            raise ConfigError(f"{skey}.to", "a drift needs two different concepts")
        if kind == "domain":
            s["domain"] = validate_domain(s["domain"], f"{skey}.domain")
        if kind == "related":
            if s["relation"] == "domain" and s["domain"] is not None:  # None: check_lifelong
                s["domain"] = validate_domain(s["domain"], f"{skey}.domain")
            s["k"] = min(s["k"] or cfg["transfer_k"], s["length"])
        if kind == "few_shot":
            s["length"] = s["shots"] * len(s["classes"]) * s["repeat"]
            if derived is not None and derived != s["length"]:
                raise ConfigError(f"{skey}.length", f"expected shots x classes x repeat = "
                                  f"{s['length']}, got {derived!r}", "remove it: a few_shot "
                                  "segment's length follows from its shots")
        segs.append(s)
    cfg["segments"] = segs
    return cfg


def check_lifelong(cfg: dict, key: str = "scenario") -> None:
    """Cross-field rules of a lifelong section and its segments (typed.py runs them after the
    fields validate; references are resolved by validate_lifelong)."""
    check_stream_keys(cfg, key)
    names: set[str] = set()
    for i, s in enumerate(cfg["segments"]):
        skey = f"{key}.segments[{i}]"
        if s.get("name") is not None:
            if s["name"] in names:
                raise ConfigError(f"{skey}.name", f"duplicate segment name {s['name']!r}")
            names.add(s["name"])
        if s["type"] == "related":
            if s["relation"] == "domain" and s["domain"] is None:
                raise ConfigError(f"{skey}.domain", "missing required key",
                                  "relation: domain needs the input transform")
            c = s["classes"]
            if s["relation"] == "siblings" and c != "auto" and not (
                    isinstance(c, list) and c and all(isinstance(v, int) for v in c)):
                raise ConfigError(f"{skey}.classes", f"expected a list of class ids or auto, "
                                  f"got {c!r}")
        if isinstance(s.get("classes"), list) and not s["classes"]:
            raise ConfigError(f"{skey}.classes", "expected at least one class id")


class LifelongStream(Stream):
    """A stream of segments over concepts (class set x input domain); see the module doc."""

    square = False

    def __init__(self, pool: Pool, cfg: dict, key: str = "scenario") -> None:
        self.generator = "lifelong"
        self.seed = int(cfg["seed"])
        self.chunk_size = int(cfg["chunk_size"])
        self.config = dict(cfg)
        self.n_classes = pool.n_classes
        self._labels = pool.y
        self._leaf_level = pool.depth - 1
        scale = float(pool.x[: min(len(pool.x), 20000)].std()) or 1.0
        self._domain_specs: list[str] = [json.dumps({"kind": "identity"})]
        self._transforms: list[DomainTransform | None] = [None]
        train_y = pool.y[pool.train]
        train_idx = pool.train_indices
        self._concepts: list[dict] = []
        concept_of_seg: list[int | None] = []
        used = np.zeros((1, self.n_classes), dtype=bool)  # class used by a concept, per domain

        def domain_id(spec: dict | None) -> int:
            if spec is None or spec["kind"] == "identity":
                return 0
            text = json.dumps(spec, sort_keys=True)
            if text not in self._domain_specs:
                self._domain_specs.append(text)
                self._transforms.append(DomainTransform(spec, pool.shape, pool.is_image, scale))
            return self._domain_specs.index(text)

        def concept(classes: list[int], domain: int, skey: str, name: str,
                    shots: int | None = None) -> int:
            nonlocal used
            cls = np.asarray(sorted(set(classes)), dtype=np.int64)
            bad = [c for c in cls.tolist() if not 0 <= c < self.n_classes
                   or not (train_y == c).any()]
            if bad:
                raise ConfigError(f"{skey}.classes", f"class ids {bad} have no training samples "
                                  f"(the pool has classes 0..{self.n_classes - 1})")
            for j, c in enumerate(self._concepts):
                if c["domain"] == domain and np.array_equal(c["classes"], cls) and not shots \
                        and not c["few_shot"]:
                    return j
            while used.shape[0] <= domain:
                used = np.vstack([used, np.zeros((1, self.n_classes), dtype=bool)])
            if used[domain, cls].any():
                raise ConfigError(f"{skey}.classes", "concepts in the same domain must have "
                                  f"disjoint class sets; classes {cls[used[domain, cls]].tolist()}"
                                  " already belong to another concept",
                                  "use a revisit for the same concept, or other classes")
            used[domain, cls] = True
            if shots:
                rng = np.random.default_rng(np.random.SeedSequence([self.seed, 0xF5,
                                                                    len(self._concepts)]))
                pool_idx = np.sort(np.concatenate([
                    rng.choice(train_idx[train_y == c], size=min(shots, (train_y == c).sum()),
                               replace=False) for c in cls]))
            else:
                pool_idx = train_idx[np.isin(train_y, cls)]
            self._concepts.append({"classes": cls, "domain": domain, "pool": pool_idx,
                                   "name": name, "few_shot": bool(shots), "first_row": None})
            return len(self._concepts) - 1

        segments = cfg["segments"]
        plan: list[dict] = []
        related, few_shot, probes = [], [], []
        cursor: dict[int, int] = {}
        pos = 0
        for i, s in enumerate(segments):
            skey = f"{key}.segments[{i}]"
            kind = s["type"]
            label = s["name"]
            if kind == "classes":
                cs = [concept(s["classes"], 0, skey, label or f"classes {s['classes']}")]
            elif kind == "revisit":
                cs = [concept_of_seg[s["of"]]]
            elif kind == "drift":
                cs = [concept_of_seg[s["from"]], concept_of_seg[s["to"]]]
            elif kind == "domain":
                base = self._concepts[concept_of_seg[s["of"]]]
                d = domain_id(s["domain"])
                cs = [concept(base["classes"].tolist(), d, skey,
                              label or f"{base['name']} / {s['domain']['kind']}")]
            elif kind == "few_shot":
                cs = [concept(s["classes"], 0, skey,
                              label or f"few-shot {s['classes']} ({s['shots']}-shot)",
                              shots=s["shots"])]
            else:  # related
                base = self._concepts[concept_of_seg[s["to"]]]
                if s["relation"] == "domain":
                    d = domain_id(s["domain"])
                    cs = [concept(base["classes"].tolist(), d, skey,
                                  label or f"{base['name']} / {s['domain']['kind']}")]
                else:
                    classes = (self._siblings(pool, base["classes"], used[0], skey)
                               if s["classes"] == "auto" else s["classes"])
                    cs = [concept(classes, 0, skey, label or f"siblings {list(classes)}")]
            concept_of_seg.append(None if kind == "drift" else cs[0])
            for c in cs:
                if self._concepts[c]["first_row"] is None:
                    self._concepts[c]["first_row"] = i
            n = s["length"]
            plan.append({"type": kind, "start": pos, "end": pos + n, "concepts": cs,
                         "offsets": [cursor.get(c, 0) for c in cs], "cfg": s})
            for c in cs:
                cursor[c] = cursor.get(c, 0) + n
            if kind == "related":
                related.append({"a": concept_of_seg[s["to"]], "b": cs[0], "segment": i,
                                "start": pos, "k": s["k"], "relation": s["relation"]})
                probes.append((pos + s["k"], {"probe": "transfer", "pair": len(related) - 1}))
            if kind == "few_shot":
                few_shot.append({"column": cs[0], "segment": i, "shots": s["shots"]})
                n_fs = s["shots"] * len(s["classes"])
                for r in range(1, s["repeat"] + 1):
                    probes.append((pos + r * n_fs, {"probe": "few_shot", "column": cs[0],
                                                    "segment": i, "pass": r}))
            pos += n
        self._plan = plan
        self.length = pos
        self.n_tasks = len(plan)
        self.n_domains = len(self._domain_specs)
        self.task_starts = np.array([p["start"] for p in plan], dtype=np.int64)
        self.task_ends = np.array([p["end"] for p in plan], dtype=np.int64)
        C = self.n_classes
        self.columns = [c["domain"] * C + c["classes"] for c in self._concepts]
        self.column_names = [c["name"] for c in self._concepts]
        self.first_row = [c["first_row"] for c in self._concepts]
        self.probes = sorted(probes, key=lambda p: p[0])
        self.meta = {
            "segments": [{"name": s["name"], "type": s["type"], "start": p["start"],
                          "end": p["end"], "columns": p["concepts"]}
                         for s, p in zip(segments, plan, strict=True)],
            "related": related, "few_shot": few_shot,
            "domains": [json.loads(t) for t in self._domain_specs]}
        self._key_cache: dict[tuple[int, int], np.ndarray] = {}
        self.unit_first_position = self._first_positions()
        self._finish_plan()

    @staticmethod
    def _siblings(pool: Pool, classes: np.ndarray, used: np.ndarray, skey: str) -> list[int]:
        if pool.ancestors is None:
            raise ConfigError(f"{skey}.classes", "classes: auto needs a label tree",
                              "list the sibling class ids, or use a pool with a tree")
        parent = pool.ancestors[:, -1]
        taken = used.copy()
        out = []
        for c in classes.tolist():
            options = np.flatnonzero((parent == parent[c]) & ~taken)
            if len(options) == 0:
                raise ConfigError(f"{skey}.classes", f"class {c} has no unused sibling",
                                  "list the classes yourself")
            out.append(int(options[0]))
            taken[options[0]] = True
        return out

    def transform(self, x: np.ndarray, domain: int, rng: np.random.Generator) -> np.ndarray:
        t = self._transforms[domain]
        return x.copy() if t is None else t(x, rng)

    def _keys(self, concept: int, epoch: int) -> np.ndarray:
        k = (concept, epoch)
        if k not in self._key_cache:
            if len(self._key_cache) > 4096:
                self._key_cache.clear()
            self._key_cache[k] = round_keys([self.seed, 0x11FE, concept, epoch])
        return self._key_cache[k]

    def _draw(self, concept: int, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pool indices and pass numbers of positions q of a concept's sample sequence."""
        pool_idx = self._concepts[concept]["pool"]
        n = len(pool_idx)
        epoch, off = np.divmod(q, n)
        index = np.empty(len(q), dtype=np.int64)
        for e in np.unique(epoch):
            sel = epoch == e
            index[sel] = pool_idx[keyed_permutation(off[sel], n, self._keys(concept, int(e)))]
        return index, epoch

    def _core(self, k: int) -> dict[str, np.ndarray]:
        start = k * self.chunk_size
        pos = np.arange(start, min(start + self.chunk_size, self.length), dtype=np.int64)
        n = len(pos)
        index = np.empty(n, dtype=np.int64)
        epoch = np.empty(n, dtype=np.int64)
        concept = np.empty(n, dtype=np.int64)
        seg_ids = np.searchsorted(self.task_starts, pos, side="right") - 1
        draws = None
        for s in np.unique(seg_ids):
            p = self._plan[s]
            sel = np.flatnonzero(seg_ids == s)
            t = pos[sel] - p["start"]
            if p["type"] == "drift":
                if draws is None:
                    draws = self.chunk_rng(k).random(n)
                cfg = p["cfg"]
                W = p["end"] - p["start"]
                frac = t / W
                prob = frac if cfg["schedule"] == "linear" else _normal_cdf(
                    (frac - cfg["centre"]) / cfg["width"])
                to_b = draws[sel] < prob
                parts = [(0, ~to_b), (1, to_b)]
            else:
                parts = [(0, np.ones(len(sel), dtype=bool))]
            for which, mask in parts:
                c = p["concepts"][which]
                rows = sel[mask]
                idx, ep = self._draw(c, p["offsets"][which] + t[mask])
                index[rows] = idx
                epoch[rows] = ep
                concept[rows] = c
        domains = np.array([c["domain"] for c in self._concepts], dtype=np.int64)
        return {
            "index": index, "task": seg_ids.astype(np.int64), "major_task": concept,
            "level": np.full(n, self._leaf_level, dtype=np.int64), "epoch": epoch,
            "domain": domains[concept],
            "boundary": np.isin(pos, self.task_starts), "first_exposure": epoch == 0,
            "sample_id": index.copy(),
        }

    def _first_positions(self) -> np.ndarray:
        """First stream position of every unit: each segment is scanned chunk by chunk only
        until its concepts' units have all appeared."""
        C, S = self.n_classes, self.chunk_size
        first = np.full(self.n_domains * C, -1, dtype=np.int64)
        for p in self._plan:
            wanted = np.concatenate([self.columns[c] for c in p["concepts"]])
            k = p["start"] // S
            while (first[wanted] < 0).any() and k * S < p["end"]:
                rec = self._core(k)
                lo, hi = max(p["start"] - k * S, 0), min(p["end"] - k * S, len(rec["index"]))
                units = (rec["domain"][lo:hi] * C + self._labels[rec["index"][lo:hi]])
                found, where = np.unique(units, return_index=True)
                new = first[found] < 0
                first[found[new]] = k * S + lo + where[new]
                k += 1
        return first


def build_lifelong(pool: Pool, cfg: dict, key: str = "scenario") -> LifelongStream:
    return LifelongStream(pool, cfg, key)


def _normal_cdf(z):
    """Standard normal CDF (scipy's ndtr, imported here so `clenv check` stays light)."""
    from scipy.special import ndtr

    return ndtr(z)

