"""Winograd convolution: 3x3 stride-1 convolutions as F(4x4, 3x3) or F(2x2, 3x3) transforms around a
batched GEMM.

A direct 3x3 convolution computes 9 multiply-adds per output and input channel; Winograd's minimal
filtering F(m x m, 3 x 3) computes a tile of m x m outputs from (m+2) x (m+2) inputs with (m+2)^2
element-wise products in a transformed domain: 36 instead of 144 for m = 4, 4x fewer. The products
of all tiles and channels form 36 independent GEMMs (`bgemm`), which MetaSchedule tiles like any
matrix product; the input transform (`data_pack`) and the output transform (`inverse`) are cheap,
memory-bound stages with their own schedule rules in TVM (`conv2d_{nchw,nhwc}_winograd_data_pack`,
`..._inverse`, for CPUs and CUDA). cuDNN and oneDNN pick Winograd for the same convolutions.

TVM 0.27 ships the compute (`topi.nn.conv2d_winograd_nchw/nhwc`) but no Relax path to it, and its
forms with a pre-transformed kernel are broken or removed (NHWC raises "LEGACY-FLOW"; NCHW reads
past its padded input when the output size is not a multiple of 4, as in ResNet's 14x14 and 7x7
stages). This module has the same stages, with the same block names and schedule rules, padding
the input to whole tiles, and the weight transform as its own function of the weight only, which
the build pipeline lifts out and runs once on the host (the deployed module holds transformed
weights; nothing is transformed per inference).

`rewrite` replaces every eligible `relax.nn.conv2d` of a model: a weight parameter of shape
(CO, CI, 3, 3) (OIHW, NCHW data) or (CO, 3, 3, CI) (OHWI, NHWC data), stride 1, dilation 1, one
group, float32, 16+ channels and 49+ output tiles (`MIN_TILES`). It takes the largest of the tile
sizes it is given (`tiles`) that leaves 49+ tiles: F(4x4, 3x3) only (`--conv winograd`), or
F(4x4, 3x3) and else F(2x2, 3x3) (`--conv winograd-f2`). F(2x2, 3x3) computes 16 products for 4
outputs instead of 36 (2.25x fewer multiply-adds than direct, against 4x), but its transformed
weights are 1.8x the 3x3 ones instead of 4x and a 14x14 map has 49 of its tiles instead of 16: in
ResNet-50's 14x14 stage the batched GEMM reads each transformed weight 49 times, where F(4x4, 3x3)
would stream 4x the weights for 16 tiles. fp16 builds keep direct convolutions: the transforms lose
too many bits in fp16, and tensor cores already run the direct form.
"""

from __future__ import annotations

TILE = 4          # m of F(m x m, 3 x 3) for `--conv winograd`; alpha = m + 2 = 6
TILES = {"winograd": (4,), "winograd-f2": (4, 2)}  # conv algorithm -> the tile sizes it may use, largest first
# A convolution with fewer input or output channels than this stays direct: its GEMMs are too thin
# to gain from 4x fewer multiply-adds what the transforms cost.
MIN_CHANNELS = 16
# A convolution with fewer output tiles than this (batch x tile rows x tile columns) stays direct. The
# batched GEMM reads each transformed weight once per tile, and the transformed weights are 4x the
# 3x3 ones: with few tiles it is bound by streaming them from memory, not by arithmetic. In tuning a
# kernel's weights stay in cache between repeats, so its records do not show this; in a model they
# stream from DRAM. ResNet-50 at batch 1 on a 2-core Intel Xeon VM (intel-6-167), every variant
# tuned there, two runs taking turns with ONNX Runtime: Winograd on all 13 eligible convolutions
# 33.0 / 32.3 ms, on those with 16+ tiles (not 7x7) 32.6 / 31.7, with 49+ tiles (56x56 and 28x28
# only) 31.5 / 30.6, none 32.6 / 32.6, although the tuned kernels alone made Winograd faster at
# every size (7x7: 0.91 against 1.14 ms direct). At batch 16 every ResNet-50 stage has 64+ tiles.
MIN_TILES = 49
# F(2x2, 3x3) keeps the same minimum. ResNet-50's 7x7 stage as F(2x2, 3x3) (16 tiles, 16.8 MB of
# transformed weights per convolution against 9.4 MB): 755 us a call tuned against 966 us direct,
# but the model ran 5.5% slower with it (31.2 against 29.5 ms, 10 rounds taking turns, intel-6-167).
# op_pattern of the convolution kernel: kOutEWiseFusable, as TVM's own convolutions are, so the bias
# add, residual add and ReLU after it fuse into its output stage.
_OUT_EWISE_FUSABLE = 4


def _matrices(m: int, dtype: str):
    from tvm.topi.nn.winograd_util import winograd_transform_matrices

    return winograd_transform_matrices(m, 3, str(dtype))


def weight_transform(kernel, layout: str, m: int = TILE):
    """The transformed kernel (alpha, alpha, CI, CO) for NCHW or (alpha, alpha, CO, CI) for NHWC,
    from an OIHW or OHWI kernel: G w G^T for every (output, input) channel pair; alpha = m + 2."""
    from tvm import te

    alpha = m + 2
    _, _, G = _matrices(m, kernel.dtype)
    kh = te.reduce_axis((0, 3), name="r_kh")
    kw = te.reduce_axis((0, 3), name="r_kw")
    if layout == "NCHW":
        co_, ci_ = int(kernel.shape[0]), int(kernel.shape[1])
        return te.compute(
            (alpha, alpha, ci_, co_),
            lambda eps, nu, ci, co: te.sum(kernel[co, ci, kh, kw] * G[eps, kh] * G[nu, kw], axis=[kh, kw]),
            name="winograd_kernel_pack")
    co_, ci_ = int(kernel.shape[0]), int(kernel.shape[3])
    return te.compute(
        (alpha, alpha, co_, ci_),
        lambda eps, nu, co, ci: te.sum(kernel[co, kh, kw, ci] * G[eps, kh] * G[nu, kw], axis=[kh, kw]),
        name="winograd_kernel_pack")


def conv2d_nchw(data, kernel_pack, padding, out_dtype: str):
    """Winograd F(m x m, 3x3) convolution of NCHW `data` with a transformed (alpha, alpha, CI, CO)
    kernel (m = alpha - 2); `padding` is (top, left, bottom, right). TVM's `_conv2d_winograd_nchw_impl`
    with the input padded to whole tiles."""
    from tvm import te, topi

    N, CI, H, W = (int(x) for x in data.shape)
    alpha, _, _, CO = (int(x) for x in kernel_pack.shape)
    m = alpha - 2
    pt, pl, pb, pr = padding
    A, B, _ = _matrices(m, out_dtype)
    OH, OW = H + pt + pb - 2, W + pl + pr - 2
    nH, nW = (OH + m - 1) // m, (OW + m - 1) // m
    P = N * nH * nW
    # rows and columns past the last whole tile are zeros (TVM's NCHW form reads past its buffer)
    eb, er = nH * m + 2 - (H + pt + pb), nW * m + 2 - (W + pl + pr)
    data_pad = topi.nn.pad(data, (0, 0, pt, pl), (0, 0, pb + eb, pr + er), name="data_pad")
    input_tile = te.compute(
        (CI, P, alpha, alpha),
        lambda ci, p, eps, nu: data_pad[p // (nH * nW), ci, ((p // nW) % nH) * m + eps, (p % nW) * m + nu],
        name="input_tile", attrs={"schedule_rule": "None"})
    ra = te.reduce_axis((0, alpha), "r_a")
    rb = te.reduce_axis((0, alpha), "r_b")
    data_pack = te.compute(
        (alpha, alpha, CI, P),
        lambda eps, nu, ci, p: te.sum(input_tile[ci, p, ra, rb] * B[ra, eps] * B[rb, nu], axis=[ra, rb]),
        name="data_pack", attrs={"schedule_rule": "conv2d_nchw_winograd_data_pack"})
    rc = te.reduce_axis((0, CI), name="ci")
    bgemm = te.compute(
        (alpha, alpha, CO, P),
        lambda eps, nu, co, p: te.sum(data_pack[eps, nu, rc, p] * kernel_pack[eps, nu, rc, co], axis=[rc]),
        name="bgemm", attrs={"layout_free_placeholders": [kernel_pack]})
    ra = te.reduce_axis((0, alpha), "r_a")
    rb = te.reduce_axis((0, alpha), "r_b")
    inverse = te.compute(
        (CO, P, m, m),
        lambda co, p, vh, vw: te.sum(bgemm[ra, rb, co, p] * A[ra, vh] * A[rb, vw], axis=[ra, rb]),
        name="inverse", attrs={"schedule_rule": "conv2d_nchw_winograd_inverse"})
    return te.compute(
        (N, CO, OH, OW),
        lambda n, co, h, w: inverse[co, n * nH * nW + (h // m) * nW + (w // m), h % m, w % m],
        name="conv2d_winograd")


def conv2d_nhwc(data, kernel_pack, padding, out_dtype: str):
    """Winograd F(m x m, 3x3) convolution of NHWC `data` with a transformed (alpha, alpha, CO, CI)
    kernel (m = alpha - 2); TVM's `_conv2d_winograd_nhwc_impl` with the kernel transformed ahead of time."""
    from tvm import te, topi

    N, H, W, CI = (int(x) for x in data.shape)
    alpha, _, CO, _ = (int(x) for x in kernel_pack.shape)
    m = alpha - 2
    pt, pl, pb, pr = padding
    A, B, _ = _matrices(m, out_dtype)
    OH, OW = H + pt + pb - 2, W + pl + pr - 2
    nH, nW = (OH + m - 1) // m, (OW + m - 1) // m
    P = N * nH * nW
    eb, er = nH * m + 2 - (H + pt + pb), nW * m + 2 - (W + pl + pr)
    data_pad = topi.nn.pad(data, (0, pt, pl, 0), (0, pb + eb, pr + er, 0), name="data_pad",
                           attrs={"schedule_rule": "None"})
    input_tile = te.compute(
        (alpha, alpha, P, CI),
        lambda eps, nu, p, ci: data_pad[p // (nH * nW), ((p // nW) % nH) * m + eps, (p % nW) * m + nu, ci],
        name="input_tile", attrs={"schedule_rule": "None"})
    ra = te.reduce_axis((0, alpha), "r_a")
    rb = te.reduce_axis((0, alpha), "r_b")
    data_pack = te.compute(
        (alpha, alpha, P, CI),
        lambda eps, nu, p, ci: te.sum(input_tile[ra, rb, p, ci] * B[ra, eps] * B[rb, nu], axis=[ra, rb]),
        name="data_pack", attrs={"schedule_rule": "conv2d_nhwc_winograd_data_pack"})
    rc = te.reduce_axis((0, CI), name="ci")
    bgemm = te.compute(
        (alpha, alpha, P, CO),
        lambda eps, nu, p, co: te.sum(data_pack[eps, nu, p, rc] * kernel_pack[eps, nu, co, rc], axis=[rc]),
        name="bgemm", attrs={"layout_free_placeholders": [kernel_pack],
                             "meta_schedule.write_cache_level": [2]})
    ra = te.reduce_axis((0, alpha), "r_a")
    rb = te.reduce_axis((0, alpha), "r_b")
    inverse = te.compute(
        (m, m, P, CO),
        lambda vh, vw, p, co: te.sum(bgemm[ra, rb, p, co] * A[ra, vh] * A[rb, vw], axis=[ra, rb]),
        name="inverse", attrs={"schedule_rule": "conv2d_nhwc_winograd_inverse"})
    return te.compute(
        (N, OH, OW, CO),
        lambda n, h, w, co: inverse[h % m, w % m, n * nH * nW + (h // m) * nW + (w // m), co],
        name="conv2d_winograd")


def eligible(call, weight_vars, tiles: tuple[int, ...] = (TILE,)) -> tuple[str, int] | None:
    """(layout "NCHW"/"NHWC", tile size m) with which `call` (a relax.nn.conv2d) can run as Winograd
    F(m x m, 3x3), m the first of `tiles` that leaves MIN_TILES tiles; or None."""
    attrs = call.attrs
    data, kernel = call.args
    if kernel not in weight_vars:
        return None
    if [int(x) for x in attrs.strides] != [1, 1] or [int(x) for x in attrs.dilation] != [1, 1]:
        return None
    if int(attrs.groups) != 1:
        return None
    out_dtype = str(attrs.out_dtype) if attrs.out_dtype is not None else ""
    if str(data.ty.dtype) != "float32" or str(kernel.ty.dtype) != "float32" or out_dtype not in ("float32", "", "void"):
        return None
    layouts = (str(attrs.data_layout), str(attrs.kernel_layout), str(attrs.out_layout))
    kshape = [int(x) for x in kernel.ty.shape] if kernel.ty.shape is not None else []
    dshape = data.ty.shape
    if dshape is None or len(kshape) != 4 or any(not isinstance(x, int) for x in _ints(dshape)):
        return None
    dims = _ints(dshape)
    if layouts == ("NCHW", "OIHW", "NCHW") and kshape[2:] == [3, 3]:
        co, ci = kshape[0], kshape[1]
        layout, (n, h, w) = "NCHW", (dims[0], dims[2], dims[3])
    elif layouts == ("NHWC", "OHWI", "NHWC") and kshape[1:3] == [3, 3]:
        co, ci = kshape[0], kshape[3]
        layout, (n, h, w) = "NHWC", (dims[0], dims[1], dims[2])
    else:
        return None
    pad = [int(x) for x in attrs.padding]
    pt, pl, pb, pr = pad * 2 if len(pad) == 2 else pad
    if min(co, ci) < MIN_CHANNELS:
        return None
    for m in tiles:
        if n * -(-(h + pt + pb - 2) // m) * -(-(w + pl + pr - 2) // m) >= MIN_TILES:
            return layout, m
    return None


def _ints(shape):
    out = []
    for x in shape:
        try:
            out.append(int(x))
        except (TypeError, ValueError):
            out.append(None)
    return out


def rewrite(mod, tiles: tuple[int, ...] = (TILE,)):
    """`main` with its eligible convolutions (see the module docstring) as Winograd: a weight
    transform (a function of the weight only, for LiftTransformParams) and the transformed
    convolution, with the first tile size of `tiles` that leaves MIN_TILES tiles. Returns (module,
    number rewritten)."""
    import tvm
    from tvm import relax
    from tvm.relax import PyExprMutator, expr_functor

    main = mod["main"]
    n_input = int(main.attrs["num_input"]) if main.attrs and "num_input" in main.attrs else len(main.params)
    weight_vars = set(main.params[n_input:])
    done = [0]

    @expr_functor.mutator
    class _Winograd(PyExprMutator):
        def visit_call_(self, call):
            call = super().visit_call_(call)
            if not (isinstance(call.op, tvm.ir.Op) and call.op.name == "relax.nn.conv2d"):
                return call
            chosen = eligible(call, weight_vars, tiles)
            if chosen is None:
                return call
            layout, m = chosen
            data, kernel = call.args
            pad = [int(x) for x in call.attrs.padding]
            pad = pad * 2 if len(pad) == 2 else pad
            done[0] += 1
            packed = self.builder_.emit(self.builder_.call_te(
                weight_transform, kernel, layout, m, primfunc_name_hint="winograd_weight_transform"))
            conv = conv2d_nchw if layout == "NCHW" else conv2d_nhwc
            return self.builder_.call_te(conv, data, packed, pad, "float32",
                                         primfunc_name_hint="conv2d_winograd",
                                         primfunc_attrs={"op_pattern": _OUT_EWISE_FUSABLE})

    mutator = _Winograd(mod)
    mutator.builder_.update_func(mod.get_global_var("main"), mutator.visit_expr(main))
    return mutator.builder_.get(), done[0]


def count_eligible(mod, tiles: tuple[int, ...] = (TILE,)) -> int:
    """How many of `main`'s convolutions `rewrite(mod, tiles)` would turn into Winograd."""
    return sum(tile_counts(mod, tiles).values())


def tile_counts(mod, tiles: tuple[int, ...] = (TILE,)) -> dict[int, int]:
    """How many of `main`'s convolutions `rewrite(mod, tiles)` would turn into Winograd, by tile size."""
    import tvm
    from tvm import relax

    main = mod["main"]
    n_input = int(main.attrs["num_input"]) if main.attrs and "num_input" in main.attrs else len(main.params)
    weight_vars = set(main.params[n_input:])
    found = []

    def visit(expr):
        if isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op) and expr.op.name == "relax.nn.conv2d":
            chosen = eligible(expr, weight_vars, tiles)
            if chosen:
                found.append(chosen[1])

    relax.analysis.post_order_visit(main.body, visit)
    return {m: found.count(m) for m in sorted(set(found), reverse=True)}
