"""hwsim's fused CPU kernels (numba): one population's whole run, neuron by neuron in registers.

The torch engine (``snnc.hwsim.sim``) is the readable mirror of Lava's fixed-point models and runs
each timestep as ~15 whole-array passes over (batch, neurons) int64 arrays. These kernels do
the same integer arithmetic in one pass per timestep, parallel over samples, and (for dense synapses
fed by sparse spikes) add only the weight rows of the inputs that spiked: the event-driven path.

``lif_block`` runs a recurrent block (``Graph.blocks()``) the same way, its recurrent synapses
event by event inside each sample's time loop (``simulate_block`` defines the semantics).

Every line of arithmetic mirrors ``HwSim._neurons`` (which quotes SP/lava/proc/lif/models.py
138-216); the tests check the engines equal on random graphs and against Lava itself.
"""
from __future__ import annotations

import os

import numba
import numpy as np

# numba's default "omp" threading layer and PyTorch's own OpenMP runtime spin against each other on
# the same cores: the kernels ran 5x slower after a torch GEMM (measured, benchmarks/hwsim_vs_lava.py).
# The simple "workqueue" layer does not; a user's NUMBA_THREADING_LAYER still wins. (workqueue does
# not allow two Python threads to call a parallel kernel at once; hwsim never does.)
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"

_JIT = dict(nogil=True, cache=True, error_model="numpy")  # exact integer code: no fastmath


@numba.njit(inline="always")
def _rtz(x: np.int64, n: np.int64) -> np.int64:
    """sign(x) * (|x| >> n): Lava's decay rounding (SP/lava/proc/lif/models.py:145-171)."""
    m = x >> 63                       # 0 or -1: branch-free, so the neuron loops vectorise
    return ((((x ^ m) - m) >> n) ^ m) - m


@numba.njit(inline="always")
def _wrap32(x: np.int64) -> np.int64:
    """Two's-complement int32 wrap (Lava sums u and v in int32, SP/lava/proc/lif/models.py:153-186)."""
    return ((x + 2147483648) & 4294967295) - 2147483648


@numba.njit(inline="always")
def _step(acc: np.ndarray, u: np.ndarray, v: np.ndarray, bias: np.ndarray, keep_u: int, keep_v: int,
          shift: int, act_shift: int, top: int, vmax: int, vth: int, out: np.ndarray) -> int:
    """One CUBA-LIF timestep of one sample; ``acc`` is the synaptic input a[t]. Returns how many
    neurons were active (input, u or v non-zero before the update), as ``HwSim._neurons`` counts."""
    wrap = 2 * top
    active = 0
    for j in range(u.shape[0]):
        a = np.int64(acc[j])
        uj = u[j]
        vj = v[j]
        active += (a != 0) | (uj != 0) | (vj != 0)
        uj = _wrap32(_rtz(uj * keep_u, shift) + _wrap32(a << act_shift))
        uj -= wrap * (uj > top)              # wrap once: '>' then '<=' (SP/lava/proc/lif/models.py:163-171)
        uj += wrap * (uj <= -top)
        vj = _wrap32(_rtz(vj * keep_v, shift) + uj + bias[j])
        vj = min(max(vj, -vmax), vmax)       # v saturates (l.174-186)
        s = vj > vth                         # strict '>' (l.207-208)
        out[j] = s
        u[j] = uj
        v[j] = vj * (1 - s)                  # reset to 0 (branch-free: the loop vectorises)
    return active


@numba.njit(inline="always")
def words_view(row: np.ndarray) -> np.ndarray:
    """A byte row (length a multiple of 8, contiguous) as uint64 words."""
    return row.view(np.uint64)


@numba.njit(inline="always")
def _add_event_rows(ev: np.ndarray, weight_t: np.ndarray, acc: np.ndarray, words: bool) -> int:
    """``acc += W.T[i] * ev[i]`` over the non-zero entries of one input row ``ev`` (spikes or graded
    values), skipping 8 silent binary inputs at once where ``words``; returns the non-zeros seen."""
    n = acc.shape[0]
    n_words = ev.shape[0] // 8 if words else 0
    ev64 = words_view(ev[:n_words * 8]) if words else np.zeros(0, dtype=np.uint64)
    count = 0
    for k in range(0, ev.shape[0], 8):
        if k < n_words * 8 and ev64[k // 8] == 0:
            continue
        for i in range(k, min(k + 8, ev.shape[0])):
            x = ev[i]
            if x != 0:
                count += 1
                w = weight_t[i]
                if x == 1:
                    for j in range(n):
                        acc[j] += w[j]
                else:
                    for j in range(n):
                        acc[j] += w[j] * x
    return count


@numba.njit(parallel=True, **_JIT)
def lif_layer(pre: np.ndarray, pre_mul: int, pre_exp: int, events: np.ndarray, weight_t: np.ndarray,
              weight_exp: int, bias: np.ndarray, keep_u: int, keep_v: int, shift: int, act_shift: int,
              top: int, vmax: int, vth: int, order: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Run one population over (batch, T); its synaptic input arrives by two optional paths.

    ``pre`` (batch, T, n), int32 or int64: synaptic sums computed elsewhere (a GEMM or a
    convolution) *before* the one-step delay; they enter as ``(pre * pre_mul) << pre_exp`` (a
    negative exponent is a floor shift right), as Lava applies weight_exp to the summed input
    (SP/lava/proc/dense/models.py:96-107). Shape (0, 0, 0) for none. A delayed Dense arrives here
    already placed at its delays and shifted (``FastEngine._delayed_sums``: mul 1, exp 0).
    ``events`` (batch, T, n_in): spikes or graded values of one dense synapse, taken event by event
    with ``weight_t`` = W.T (n_in, n): only the rows of inputs that are non-zero are added (the
    event-driven path, which pays when activity is sparse). Shape (0, 0, 0) for none.
    The delay is applied here: a[t] = W s[t-1], a[0] = 0. ``order`` (n,) int64: neuron j reads
    ``pre[..., order[j]]`` (a convolution's channels-last sums, no transposing pass); empty: in order.

    Returns spikes (batch, T, n) bool, v after the last step (batch, n) int64, and per (batch, T):
    active neurons, output spikes, non-zero inputs of the event synapse.
    """
    has_pre = pre.shape[0] > 0
    has_ev = events.shape[0] > 0
    words = events.itemsize == 1 and events.shape[2] >= 8
    batch = pre.shape[0] if has_pre else events.shape[0]
    steps = pre.shape[1] if has_pre else events.shape[1]
    n = bias.shape[0]
    out = np.zeros((batch, steps, n), dtype=np.bool_)
    v_final = np.zeros((batch, n), dtype=np.int64)
    active = np.zeros((batch, steps), dtype=np.int64)
    nspk = np.zeros((batch, steps), dtype=np.int64)
    nev = np.zeros((batch, steps), dtype=np.int64)
    # a shift by a signed exponent, branch-free: (x << left) >> right, one of them 0 (floor right shift)
    p_left, p_right = max(pre_exp, 0), max(-pre_exp, 0)
    e_left, e_right = max(weight_exp, 0), max(-weight_exp, 0)
    wrap = 2 * top
    has_order = order.shape[0] > 0
    zero_row = np.zeros(pre.shape[2] if has_pre else n, dtype=pre.dtype)  # before the first step, or no GEMM
    for b in numba.prange(batch):
        u = np.zeros(n, dtype=np.int64)
        v = np.zeros(n, dtype=np.int64)
        acc = np.zeros(n, dtype=weight_t.dtype)     # the event synapse's sum; 0 without one
        gathered = np.zeros(n if has_order else 0, dtype=pre.dtype)
        for t in range(steps):
            if has_ev and t > 0:
                acc[:] = 0
                nev[b, t] = _add_event_rows(events[b, t - 1], weight_t, acc, words)
            # one fused, branch-free pass per step (input, u, v, spike, counts): the state stays in
            # registers and the loop vectorises; _step's arithmetic, line for line
            row = pre[b, t - 1] if has_pre and t > 0 else zero_row
            s = out[b, t]
            act = 0
            cnt = 0
            if has_order and has_pre and t > 0:    # ``pre`` in another neuron order (a conv's channels last)
                for j in range(n):
                    gathered[j] = row[order[j]]
                row = gathered
            for j in range(n):
                x = (((np.int64(row[j]) * pre_mul) << p_left) >> p_right) + ((np.int64(acc[j]) << e_left) >> e_right)
                uj = u[j]
                vj = v[j]
                act += (x != 0) | (uj != 0) | (vj != 0)
                uj = _wrap32(_rtz(uj * keep_u, shift) + _wrap32(x << act_shift))
                uj -= wrap * (uj > top)
                uj += wrap * (uj <= -top)
                vj = _wrap32(_rtz(vj * keep_v, shift) + uj + bias[j])
                vj = min(max(vj, -vmax), vmax)
                sp = vj > vth
                s[j] = sp
                cnt += sp
                u[j] = uj
                v[j] = vj * (1 - sp)
            active[b, t] = act
            nspk[b, t] = cnt
        v_final[b] = v
    return out, v_final, active, nspk, nev


@numba.njit(parallel=True, **_JIT)
def add_delayed(total: np.ndarray, y: np.ndarray, delay: int, cols: np.ndarray, mul: int, exp: int) -> None:
    """One delay group of a delayed Dense into ``total`` (batch, T, n) int64, in place:
    ``total[b, t + delay, cols[j]] += (y[b, t, j] * mul) << exp`` for t + delay < T (a negative
    exponent a floor shift right), each group shifted on its own as Lava's DelayDense shifts each
    delay's sum (SP/lava/proc/dense/models.py:339-352). ``y`` (batch, T, len(cols)): the group's GEMM
    (int32 or int64) over its output rows ``cols``."""
    batch, steps, _ = total.shape
    m = cols.shape[0]
    for b in numba.prange(batch):
        for t in range(steps - delay):
            src = y[b, t]
            dst = total[b, t + delay]
            if exp >= 0:
                for j in range(m):
                    dst[cols[j]] += (np.int64(src[j]) * mul) << exp
            else:
                for j in range(m):
                    dst[cols[j]] += (np.int64(src[j]) * mul) >> -exp


@numba.njit(parallel=True, **_JIT)
def nonzero_counts(x: np.ndarray) -> np.ndarray:
    """Non-zero entries per (batch, T) of (batch, T, n): the events a layer's input delivers."""
    batch, steps, n = x.shape
    counts = np.zeros((batch, steps), dtype=np.int64)
    for b in numba.prange(batch):
        for t in range(steps):
            c = 0
            for i in range(n):
                c += x[b, t, i] != 0
            counts[b, t] = c
    return counts


@numba.njit(parallel=True, **_JIT)
def nonzero_per_input(x: np.ndarray) -> np.ndarray:
    """Non-zero entries per (T, input) of (batch, T, n), summed over the batch (a conv's synaptic ops)."""
    batch, steps, n = x.shape
    counts = np.zeros((steps, n), dtype=np.int64)
    for t in numba.prange(steps):
        c = counts[t]
        for b in range(batch):
            row = x[b, t]
            for i in range(n):
                c[i] += row[i] != 0
    return counts


@numba.njit(parallel=True, **_JIT)
def pooled_nhwc(x: np.ndarray, in_shape: tuple[int, int, int], pad: tuple[int, int], f: int) -> np.ndarray:
    """A convolution's input (rows, C * H * W) in (C, H, W) order (spikes or graded values) ->
    float32 (rows, Hq, Wq, C), channels last: zero-padded by ``pad`` and summed over f x f blocks
    (``Hq = (H + 2 pad) // f``; f = 1 with pad (0, 0): a copy in channels-last order). One pass,
    exact (small integers), only the non-zero inputs touched."""
    rows = x.shape[0]
    c_n, h, w = in_shape
    ph, pw = pad
    hq, wq = (h + 2 * ph) // f, (w + 2 * pw) // f
    out = np.zeros((rows, hq, wq, c_n), dtype=np.float32)
    for r in numba.prange(rows):
        src = x[r]
        dst = out[r]
        for c in range(c_n):
            for y in range(h):
                qy = (y + ph) // f
                if qy >= hq:
                    continue
                base = (c * h + y) * w
                for xx in range(w):
                    v = src[base + xx]
                    if v != 0:
                        qx = (xx + pw) // f
                        if qx < wq:
                            dst[qy, qx, c] += v
    return out


@numba.njit(parallel=True, **_JIT)
def conv_events(x: np.ndarray, w_t: np.ndarray, in_shape: tuple[int, int, int], out_shape: tuple[int, int, int],
                stride: tuple[int, int], padding: tuple[int, int], dilation: tuple[int, int], groups: int
                ) -> np.ndarray:
    """Exact conv2d (PyTorch's cross-correlation, (C, H, W) flattened) of (batch, T, n_in) spikes or
    graded values, event by event: each non-zero input adds its kernel taps to the outputs it reaches.

    ``w_t`` is the weight as (C_in / groups, kh, kw, C_out), int32 where every sum fits (else int64),
    so that one tap adds to all of a group's output channels contiguously. Output (batch, T,
    C_out * Ho * Wo) of ``w_t``'s type, *not* wrapped to 24 bits (the caller wraps, as Lava wraps the summed output: SP/lava/proc/conv/models.py:68-79).
    For input with few non-zeros this does density x the work of the dense convolution.
    """
    batch, steps, _ = x.shape
    c_in, h, w = in_shape
    c_out, ho, wo = out_shape
    cin_g, kh, kw = w_t.shape[0], w_t.shape[1], w_t.shape[2]
    cout_g = c_out // groups
    sy, sx = stride
    dy, dx = dilation
    out = np.zeros((batch, steps, c_out * ho * wo), dtype=w_t.dtype)
    for b in numba.prange(batch):
        acc = np.zeros((ho, wo, c_out), dtype=w_t.dtype)
        for t in range(steps):
            row = x[b, t]
            acc[:] = 0
            for i in range(row.shape[0]):
                if row[i] == 0:
                    continue
                val = row[i]
                c = i // (h * w)
                py = (i // w) % h + padding[0]          # coordinates in the padded input
                px = i % w + padding[1]
                g = c // cin_g
                cg = c - g * cin_g
                o0 = g * cout_g
                # output oy receives tap ky where py = oy * sy + ky * dy; with dilation 1 only every
                # sy-th ky can (ky = py mod sy, then steps of sy)
                ky_first, ky_step = (py % sy, sy) if dy == 1 else (0, 1)
                kx_first, kx_step = (px % sx, sx) if dx == 1 else (0, 1)
                for ky in range(ky_first, kh, ky_step):
                    num_y = py - ky * dy
                    if num_y < 0:
                        break
                    if num_y % sy != 0 or num_y // sy >= ho:
                        continue
                    oy = num_y // sy
                    for kx in range(kx_first, kw, kx_step):
                        num_x = px - kx * dx
                        if num_x < 0:
                            break
                        if num_x % sx != 0 or num_x // sx >= wo:
                            continue
                        tap = w_t[cg, ky, kx]
                        dst = acc[oy, num_x // sx]
                        if val == 1:
                            for o in range(o0, o0 + cout_g):
                                dst[o] += tap[o]
                        else:
                            for o in range(o0, o0 + cout_g):
                                dst[o] += tap[o] * val
            dst_row = out[b, t]
            for o in range(c_out):           # (Ho, Wo, C) -> the (C, H, W) flattening of the graph
                for oy in range(ho):
                    for ox in range(wo):
                        dst_row[(o * ho + oy) * wo + ox] = acc[oy, ox, o]
    return out


@numba.njit(parallel=True, **_JIT)
def lif_block(batch: int, steps: int, seg: np.ndarray, pre: np.ndarray, pre_at: np.ndarray, pre_mul: np.ndarray,
              pre_exp: np.ndarray, events: np.ndarray, ev_rows: np.ndarray, ev_mul: int, ev_exp: int, ev_at: int,
              rec_w: np.ndarray, rec: np.ndarray, acc_type: np.ndarray, bias: np.ndarray, keep_u: np.ndarray, keep_v: np.ndarray,
              shift: np.ndarray, act_shift: np.ndarray, top: np.ndarray, vmax: np.ndarray, vth: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Run one recurrent block of ``Graph.blocks()`` over (batch, T): its P populations side by
    side as one vector of N neurons, population q at ``seg[q]:seg[q + 1]`` with its own LIF
    parameters (``keep_u`` ... ``vth``, (P,) each; ``bias`` (N,)). Mirrors ``simulate_block``.

    Feed-forward input (sources before the block), delayed here (a[t] uses step t - 1):
    ``pre`` (batch, T, M) int32 or int64, sums computed elsewhere (GEMMs, convolutions): population
    q with ``pre_at[q]`` >= 0 reads columns ``pre_at[q]:pre_at[q] + n_q`` as
    ``(pre * pre_mul[q]) << pre_exp[q]`` (a negative exponent a floor shift right); shape (0, 0, 0)
    for none. ``events`` (batch, T, n_in): one feed-forward dense synapse taken event by event
    (``ev_rows`` = W.T (n_in, n_dst) / ``ev_mul``, exponent ``ev_exp``, into neurons
    ``ev_at:ev_at + n_dst``); shape (0, 0, 0) for none.
    Recurrent synapses (sources in the block), one row of ``rec`` (R, 6) each: source population,
    first destination neuron, destination size, offset of its W.T (n_src, n_dst) in the flat
    ``rec_w``, weight exponent, multiplier. Step t adds, per synapse, ``(sum of the W.T rows of the
    source neurons that spiked at t - 1) * mul << exp``: event by event from the list of the previous
    step's spikes, summed exactly in ``acc_type``'s integer type (both paths; int32 over int8 weights:
    Lava's weights are 2 x an int8, mul = 2), shifted once per synapse as Lava shifts the summed input
    (SP/lava/proc/dense/models.py:96-107).

    Returns spikes (batch, T, N) bool, v after the last step (batch, N) int64, and per (batch, T, P)
    active neurons and output spikes of each population.
    """
    n_pop = seg.shape[0] - 1
    n = seg[n_pop]
    has_pre = pre.shape[0] > 0
    has_ev = events.shape[0] > 0
    words = events.itemsize == 1 and events.shape[2] >= 8
    n_ev = ev_rows.shape[1]
    narrow = rec_w.itemsize == 1
    width = 1
    for r in range(rec.shape[0]):
        width = max(width, rec[r, 2])
    out = np.zeros((batch, steps, n), dtype=np.bool_)
    v_final = np.zeros((batch, n), dtype=np.int64)
    active = np.zeros((batch, steps, n_pop), dtype=np.int64)
    nspk = np.zeros((batch, steps, n_pop), dtype=np.int64)
    for b in numba.prange(batch):
        u = np.zeros(n, dtype=np.int64)
        v = np.zeros(n, dtype=np.int64)
        a = np.zeros(n, dtype=np.int64)
        ev_acc = np.zeros(n_ev, dtype=acc_type.dtype)
        acc = np.zeros(width, dtype=acc_type.dtype)
        acc16 = np.zeros(width if narrow else 0, dtype=np.int16)
        fired = np.zeros(n, dtype=np.int64)        # the previous step's spiking neurons, ascending
        first = np.zeros(n_pop + 1, dtype=np.int64)  # population q's among them: fired[first[q]:first[q+1]]
        for t in range(steps):
            a[:] = 0
            if t > 0:
                if has_pre:
                    row = pre[b, t - 1]
                    for q in range(n_pop):
                        at = pre_at[q]
                        if at < 0:
                            continue
                        m, mul, e = seg[q + 1] - seg[q], pre_mul[q], pre_exp[q]
                        src, dst = row[at:at + m], a[seg[q]:seg[q + 1]]   # slices: the loops vectorise
                        if e >= 0:
                            for j in range(m):
                                dst[j] = (np.int64(src[j]) * mul) << e
                        else:
                            for j in range(m):
                                dst[j] = (np.int64(src[j]) * mul) >> -e
                if has_ev:
                    ev_acc[:] = 0
                    _add_event_rows(events[b, t - 1], ev_rows, ev_acc, words)
                    for j in range(n_ev):
                        x = np.int64(ev_acc[j]) * ev_mul
                        a[ev_at + j] += x << ev_exp if ev_exp >= 0 else x >> -ev_exp
                for r in range(rec.shape[0]):
                    q, dst, n_dst, base, e, mul = rec[r, 0], rec[r, 1], rec[r, 2], rec[r, 3], rec[r, 4], rec[r, 5]
                    if first[q + 1] == first[q]:
                        continue            # the source was silent: nothing arrives
                    acc[:n_dst] = 0
                    k = first[q]
                    while k < first[q + 1]:
                        # int8 weights: up to 256 rows summed in int16 (|sum| <= 128 x 256 fits), twice
                        # the SIMD lanes of int32, then added to the exact sum; wider weights directly
                        stop = min(k + 256, first[q + 1]) if narrow else first[q + 1]
                        acc16[:n_dst] = 0
                        for i in range(k, stop):
                            w0 = base + (fired[i] - seg[q]) * n_dst
                            w = rec_w[w0:w0 + n_dst]      # a row slice: the adds vectorise (indexing rec_w didn't)
                            if narrow:
                                for j in range(n_dst):
                                    acc16[j] += w[j]
                            else:
                                for j in range(n_dst):
                                    acc[j] += w[j]
                        if narrow:
                            for j in range(n_dst):
                                acc[j] += acc16[j]
                        k = stop
                    if e >= 0:
                        for j in range(n_dst):
                            a[dst + j] += (np.int64(acc[j]) * mul) << e
                    else:
                        for j in range(n_dst):
                            a[dst + j] += (np.int64(acc[j]) * mul) >> -e
            s = out[b, t]
            count = 0
            for q in range(n_pop):
                lo, hi = seg[q], seg[q + 1]
                first[q] = count
                active[b, t, q] = _step(a[lo:hi], u[lo:hi], v[lo:hi], bias[lo:hi], keep_u[q], keep_v[q], shift[q],
                                        act_shift[q], top[q], vmax[q], vth[q], s[lo:hi])
                for j in range(lo, hi):      # branch-free: the index is kept only where s[j]
                    fired[count] = j
                    count += s[j]
                nspk[b, t, q] = count - first[q]
            first[n_pop] = count
        v_final[b] = v
    return out, v_final, active, nspk
