"""The fpn layout's prediction heads on the host, in numpy (docs/model.md §2 and §11).

Why not the PyTorch module: on CPUs with AVX-512, PyTorch's MKL/oneDNN kernels give results that
depend on the thread count (and MKL's on memory alignment), so two paths with different worker
counts wrote scores 1 ulp apart. Here each 3×3 convolution is a float32 matrix product through
numpy's OpenBLAS on one BLAS thread (its threaded products are not always those of one thread:
with its Haswell kernels 1 and 2 threads differ in the last bit), cut into row blocks of a fixed
size that `threads` Python threads share: every value is computed the same way whatever the thread
count or path (tests/test_exact_on_every_cpu.py, also under instruction-set limits). Same
machine, same bits; other CPUs agree within the export tolerance. The price, measured with
bench/host_heads.py on a 2-core Intel Xeon (AMX): R50 heads 172 ms per image on one thread and
128 on two, against PyTorch's 132 and 92.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

# The head's four convolutions, as named in the checkpoint under HEAD_PREFIX.
HEAD_PREFIX = "prediction_layers.0."
_UPFEATURE = "upfeature.0"
_OUTPUT_LAYERS = ("bbox_layer", "conf_layer", "mask_layer")
# Rows of a product computed by one call: fixed, so the blocks never depend on the thread count.
ROW_BLOCK = 512


def _as_matrix(weight: np.ndarray) -> np.ndarray:
    """[out, in, 3, 3] → [9·in, out], rows in (dy, dx, channel) order to match `_columns`."""
    out_channels = weight.shape[0]
    return np.ascontiguousarray(weight.transpose(2, 3, 1, 0).reshape(-1, out_channels), dtype=np.float32)


def _fill_columns(hwc: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """The [H·W, 9·C] inputs of a 3×3 convolution with one pixel of zero padding, written into
    `columns` ([H, W, 3, 3, C], zero where a tap falls outside: those cells are never written)."""
    height, width, channels = hwc.shape
    for dy in range(3):
        for dx in range(3):
            y0, y1 = max(0, 1 - dy), min(height, height + 1 - dy)
            x0, x1 = max(0, 1 - dx), min(width, width + 1 - dx)
            columns[y0:y1, x0:x1, dy, dx] = hwc[y0 + dy - 1:y1 + dy - 1, x0 + dx - 1:x1 + dx - 1]
    return columns.reshape(height * width, 9 * channels)


class HostHeads:
    """loc [P,4], conf [P,C] (softmax) and mask coefficients [P,32] (tanh) of one image, from its
    five FPN maps ([1, 256, H, W] each), with the weights of one checkpoint's shared head."""

    def __init__(self, state: dict[str, np.ndarray], num_classes: int, mask_dim: int, threads: int = 1):
        self.num_classes, self.mask_dim = num_classes, mask_dim
        self.pool = ThreadPoolExecutor(threads) if threads > 1 else None
        self.up_weight = _as_matrix(state[f"{_UPFEATURE}.weight"])
        self.up_bias = state[f"{_UPFEATURE}.bias"].astype(np.float32)
        # The three output convolutions read the same columns: one product, split afterwards.
        self.out_weight = np.concatenate([_as_matrix(state[f"{n}.weight"]) for n in _OUTPUT_LAYERS], axis=1)
        self.out_bias = np.concatenate([state[f"{n}.bias"] for n in _OUTPUT_LAYERS]).astype(np.float32)
        self.splits = np.cumsum([state[f"{n}.bias"].shape[0] for n in _OUTPUT_LAYERS])[:-1]
        # One column buffer per map size, kept: filling a fresh 44 MB array (P3) took twice as long.
        self._columns: dict[tuple[int, ...], np.ndarray] = {}

    @classmethod
    def from_checkpoint(cls, weights: str, config: str, threads: int = 1) -> HostHeads:
        """The shared head's weights of a checkpoint (read, renamed and matched to its config as
        every step reads one; only reading needs torch)."""
        from .checkpoint import match_config, normalize_keys, read_state_dict

        state = normalize_keys(read_state_dict(weights))
        cfg = match_config(state, config, weights)
        head = {k[len(HEAD_PREFIX):]: v.float().numpy() for k, v in state.items() if k.startswith(HEAD_PREFIX)}
        return cls(head, cfg.num_classes, cfg.mask_dim, threads)

    def _product(self, columns: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
        """columns @ weight + bias, one fixed block of rows per BLAS call (numpy's BLAS kept to one
        thread by the caller: parallel.limit_blas_threads)."""
        out = np.empty((columns.shape[0], weight.shape[1]), np.float32)

        def block(start: int) -> None:
            rows = slice(start, start + ROW_BLOCK)
            np.matmul(columns[rows], weight, out=out[rows])
            out[rows] += bias

        starts = range(0, columns.shape[0], ROW_BLOCK)
        if self.pool is None:
            for start in starts:
                block(start)
        else:
            list(self.pool.map(block, starts))
        return out

    def _level(self, chw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        hwc = np.ascontiguousarray(chw.transpose(1, 2, 0), dtype=np.float32)
        height, width, channels = hwc.shape
        shape = (height, width, 3, 3, channels)
        if shape not in self._columns:
            self._columns[shape] = np.zeros(shape, np.float32)
        columns = self._columns[shape]
        features = self._product(_fill_columns(hwc, columns), self.up_weight, self.up_bias)
        np.maximum(features, 0, out=features)
        outputs = self._product(_fill_columns(features.reshape(height, width, channels), columns),
                                self.out_weight, self.out_bias)
        loc, conf, coef = np.split(outputs, self.splits, axis=1)
        # [H·W, anchors·k] → [H·W·anchors, k]: prior index (y·W + x)·anchors + a.
        return loc.reshape(-1, 4), conf.reshape(-1, self.num_classes), coef.reshape(-1, self.mask_dim)

    def __call__(self, fpn_maps: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        levels = [self._level(m[0]) for m in fpn_maps]
        loc, conf, coef = (np.concatenate(parts) for parts in zip(*levels))
        conf = np.exp(conf - conf.max(axis=1, keepdims=True))
        conf /= conf.sum(axis=1, keepdims=True)
        return loc, conf, np.tanh(coef)
