"""Low-rank factorisations of convolution and Linear weights, with ``torch.linalg`` only.

A convolution weight ``W`` has shape ``(C_out, C_in, kh, kw)``. Its mode-0 unfolding is
``C_out x (C_in*kh*kw)`` and its mode-1 unfolding ``C_in x (C_out*kh*kw)``. Tucker-2 keeps the
spatial modes whole and compresses the two channel modes:
``W ~= core x_0 U_out x_1 U_in`` with ``core`` of shape ``(r_out, r_in, kh, kw)``.
Computations run in float64 and the factors are returned in the weight's dtype.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "energy_rank",
    "reduce_factors",
    "singular_values",
    "svd_factors",
    "tail_energy",
    "tucker2",
    "tucker2_error_table",
    "unfold",
    "whitened_factors",
    "whitened_singular_values",
]


def unfold(weight: torch.Tensor, mode: int) -> torch.Tensor:
    """Matrix whose rows index dimension ``mode`` of ``weight``.

    >>> unfold(torch.zeros(4, 3, 2, 2), 1).shape
    torch.Size([3, 16])
    """
    return weight.movedim(mode, 0).reshape(weight.shape[mode], -1)


def singular_values(matrix: torch.Tensor) -> torch.Tensor:
    """Singular values of ``matrix`` in float64, largest first.

    >>> singular_values(torch.diag(torch.tensor([1.0, 3.0]))).tolist()
    [3.0, 1.0]
    """
    m = matrix.detach().to(torch.float64)
    if m.shape[0] > m.shape[1]:
        m = m.T
    # eigvalsh of the small Gram matrix: much faster than an SVD of a wide unfolding.
    values = torch.linalg.eigvalsh(m @ m.T).flip(0).clamp_min(0.0).sqrt()
    return values


def energy_rank(values: torch.Tensor, energy: float) -> int:
    """Smallest rank whose leading singular ``values`` keep ``energy`` of their squared sum.

    >>> energy_rank(torch.tensor([3.0, 1.0]), 0.9)
    1
    >>> energy_rank(torch.tensor([3.0, 1.0]), 0.95)
    2
    """
    sq = values.to(torch.float64) ** 2
    total = float(sq.sum())
    if total == 0.0:
        return 1
    kept = torch.cumsum(sq, 0) / total
    # A tiny tolerance so that energy=1.0 is met despite rounding in the cumulative sum.
    return min(int(torch.searchsorted(kept, torch.tensor(energy - 1e-12, dtype=kept.dtype))) + 1, len(values))


def tail_energy(values: torch.Tensor) -> torch.Tensor:
    """``t[r]`` = sum of squared singular ``values`` beyond the first ``r`` (r = 0..len).

    >>> tail_energy(torch.tensor([2.0, 1.0])).tolist()
    [5.0, 1.0, 0.0]
    """
    sq = values.to(torch.float64) ** 2
    tail = torch.flip(torch.cumsum(torch.flip(sq, [0]), 0), [0])
    return torch.cat([tail, tail.new_zeros(1)])


def _leading(matrix: torch.Tensor, rank: int) -> torch.Tensor:
    """The ``rank`` leading left singular vectors of ``matrix`` (float64).

    Taken as eigenvectors of the Gram matrix ``M M^T`` (rows x rows, small for channel
    unfoldings), which is far faster than an SVD of the wide unfolding; in float64 the
    subspace is accurate, and at full rank the basis is complete, so reconstruction is exact.
    """
    _, vectors = torch.linalg.eigh(matrix @ matrix.T)
    return vectors.flip(1)[:, :rank].contiguous()


def _leading_eigenvectors(symmetric: torch.Tensor, rank: int) -> torch.Tensor:
    """The ``rank`` eigenvectors of the largest eigenvalues of a symmetric matrix (float64)."""
    _, vectors = torch.linalg.eigh(symmetric.to(torch.float64))
    return vectors.flip(1)[:, :rank].contiguous()


def tucker2(
    weight: torch.Tensor, rank_out: int, rank_in: int, *, iterations: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Tucker-2 factors of a convolution weight by HOSVD, refined by ``iterations`` of HOOI.

    Returns:
        ``(core, u_out, u_in)`` with shapes ``(r_out, r_in, kh, kw)``, ``(C_out, r_out)`` and
        ``(C_in, r_in)``; ``W ~= einsum("abkl,oa,ib->oikl", core, u_out, u_in)``.

    Example:
        >>> w = torch.randn(6, 5, 3, 3)
        >>> core, u_out, u_in = tucker2(w, 6, 5)
        >>> back = torch.einsum("abkl,oa,ib->oikl", core, u_out, u_in)
        >>> torch.allclose(back, w, atol=1e-5)
        True
    """
    dtype = weight.dtype
    w = weight.detach().to(torch.float64)
    u_out = _leading(unfold(w, 0), rank_out)
    u_in = _leading(unfold(w, 1), rank_in)
    for _ in range(iterations):
        # HOOI: each factor becomes the leading subspace of W projected on the other one.
        u_out = _leading(unfold(torch.einsum("oikl,ib->obkl", w, u_in), 0), rank_out)
        u_in = _leading(unfold(torch.einsum("oikl,oa->aikl", w, u_out), 1), rank_in)
    core = torch.einsum("oikl,oa,ib->abkl", w, u_out, u_in)
    return core.to(dtype), u_out.to(dtype), u_in.to(dtype)


def reduce_factors(weight: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A 1x1 reduction ``P`` (rank x C_in) and a kxk weight ``K`` with ``W ~= K x_1 P``.

    ``P`` spans the leading subspace of the mode-1 unfolding, so it keeps the input channel
    directions the convolution uses most.

    Example:
        >>> w = torch.randn(6, 5, 3, 3)
        >>> p, k = reduce_factors(w, 5)
        >>> torch.allclose(torch.einsum("orkl,ri->oikl", k, p), w, atol=1e-5)
        True
    """
    dtype = weight.dtype
    w = weight.detach().to(torch.float64)
    u = _leading(unfold(w, 1), rank)
    kernel = torch.einsum("oikl,ir->orkl", w, u)
    return u.T.contiguous().to(dtype), kernel.to(dtype)


def _whiten(second_moment: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(S^1/2, S^-1/2)`` of a second moment with a ``1e-6`` ridge (of its mean diagonal), float64."""
    s = second_moment.detach().to(torch.float64)
    n = s.shape[0]
    scale = float(s.diagonal().mean())
    if not scale > 0:  # no input energy at all: every direction is as good as any
        scale = 1.0
    s = (s + s.T) / 2 + 1e-6 * scale * torch.eye(n, dtype=s.dtype, device=s.device)
    values, vectors = torch.linalg.eigh(s)
    values = values.clamp_min(1e-9 * scale)
    return (vectors * values.sqrt()) @ vectors.T, (vectors / values.sqrt()) @ vectors.T


def whitened_singular_values(matrix: torch.Tensor, second_moment: torch.Tensor) -> torch.Tensor:
    """Singular values of ``M S^1/2`` (float64, largest first): their squares are the output energy
    ``E||M x||^2`` along each direction :func:`whitened_factors` keeps, so their tail is its error.

    Example:
        >>> m = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> [round(v, 3) for v in whitened_singular_values(m, torch.diag(torch.tensor([4.0, 1.0]))).tolist()]
        [2.0, 1.0]
    """
    root, _ = _whiten(second_moment)
    return singular_values(matrix.detach().to(torch.float64) @ root.to(matrix.device))


def whitened_factors(
    matrix: torch.Tensor, second_moment: torch.Tensor, rank: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(P, K)`` minimising ``E||(M - K P) x||^2`` over inputs ``x`` with ``E[x x^T]`` = ``second_moment``.

    ``matrix`` ``M`` (outputs x in) maps an input vector; ``P`` (rank x in) projects it onto
    ``rank`` directions and ``K`` (outputs x rank) maps them back. With ``S = L L^T`` (``L`` the
    symmetric square root), the best ``K P`` is the truncated SVD of ``M L`` taken back through
    ``L^-1``: ``P = V_r^T L^-1``, ``K = M L V_r`` (Eckart-Young in the whitened coordinates).
    Unlike the weight's own SVD it keeps the directions the inputs actually take, weighted by
    how much the layer uses them. ``S`` gets a small ridge (``1e-6`` of its mean diagonal) so
    that channels the inputs never use (dead ReLUs) cost nothing and ``L`` stays invertible: at
    full rank ``K P`` is ``M`` whatever ``S`` is. The rows of ``P`` have unit norm.

    Example:
        >>> m, x = torch.randn(5, 4), torch.randn(100, 4)
        >>> p, k = whitened_factors(m, x.T @ x, 4)
        >>> torch.allclose(k @ p, m, atol=1e-5)
        True
    """
    dtype = matrix.dtype
    m = matrix.detach().to(torch.float64)
    root, inverse_root = _whiten(second_moment)
    z = m @ root
    v = _leading(z.T, rank)  # the leading right singular vectors of M L
    p = v.T @ inverse_root
    k = z @ v
    norms = p.norm(dim=1, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)
    return (p / norms).to(dtype), (k * norms.T).to(dtype)


def svd_factors(weight: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(A, B)`` with ``W ~= B @ A``, ``A`` (rank x in) and ``B`` (out x rank), balanced by sqrt(S).

    Example:
        >>> w = torch.randn(4, 6)
        >>> a, b = svd_factors(w, 4)
        >>> torch.allclose(b @ a, w, atol=1e-5)
        True
    """
    dtype = weight.dtype
    w = weight.detach().to(torch.float64)
    tiny = torch.finfo(torch.float64).eps
    if w.shape[0] <= w.shape[1]:
        u = _leading(w, rank)  # out x rank
        s2 = ((u.T @ w) ** 2).sum(1)  # squared singular values
        root = s2.clamp_min(tiny).sqrt().sqrt()
        a = (u.T @ w) / root[:, None]
        b = u * root[None, :]
    else:
        v = _leading(w.T, rank)  # in x rank
        s2 = ((w @ v) ** 2).sum(0)
        root = s2.clamp_min(tiny).sqrt().sqrt()
        a = v.T * root[:, None]
        b = (w @ v) / root[None, :]
    return a.to(dtype), b.to(dtype)


def tucker2_error_table(weight: torch.Tensor) -> torch.Tensor:
    """``E[r_out, r_in]`` = squared error of the HOSVD truncation to ranks (r_out, r_in).

    The full HOSVD core ``G`` is an orthogonal change of basis of ``W``, so truncating it to
    ``G[:r_out, :r_in]`` leaves a squared error of ``||W||^2 - ||G[:r_out, :r_in]||^2``: one
    2-D cumulative sum gives every pair of ranks at once. Index 0 means rank 0.

    Example:
        >>> w = torch.randn(4, 3, 3, 3)
        >>> e = tucker2_error_table(w)
        >>> e.shape, abs(float(e[4, 3])) < 1e-9, math.isclose(float(e[0, 0]), float((w.double() ** 2).sum()))
        (torch.Size([5, 4]), True, True)
    """
    w = weight.detach().to(torch.float64)
    c_out, c_in = w.shape[:2]
    u_out = _leading(unfold(w, 0), c_out)
    u_in = _leading(unfold(w, 1), c_in)
    core = torch.einsum("oikl,oa,ib->abkl", w, u_out, u_in)
    kept = (core**2).sum(dim=(2, 3)).cumsum(0).cumsum(1)
    kept = torch.nn.functional.pad(kept, (1, 0, 1, 0))
    return ((w**2).sum() - kept).clamp_min(0.0)


def round_rank(rank: float, multiple: int, cap: int) -> int:
    """``rank`` rounded up to a multiple of ``multiple``, at least 1 and at most ``cap``.

    >>> round_rank(13, 8, 64), round_rank(13, 8, 12), round_rank(0.2, 1, 5)
    (16, 12, 1)
    """
    return int(max(1, min(cap, math.ceil(rank / multiple) * multiple)))
