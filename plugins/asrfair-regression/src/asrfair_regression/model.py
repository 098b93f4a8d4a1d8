"""The two fits: a Poisson GEE with speakers as clusters, and a Poisson GLMM with a speaker
random intercept. Plain arrays in, a ``Fit`` out; nothing here knows asrfair.

Both model the errors of utterance i as Poisson with mean N_i * exp(x_i . beta): the log of
its reference word count N_i is an offset, so exp(beta_g) is group g's error rate relative to
the reference group, holding the covariates fixed.

A fit that cannot be trusted raises ``FitError`` with a sentence for the report, never a
NaN: the caller prints it where the table would have been.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special, stats

COV_TYPES = {"bias-reduced": "bias_reduced", "robust": "robust"}
QUADRATURE_NODES = 20
BOUNDARY_LOG_SD = np.log(1e-3)  # a speaker SD below this is "no speaker effect"


class FitError(Exception):
    """A model that could not be fitted, said in one sentence for the report."""


@dataclass(frozen=True)
class Fit:
    """Coefficients, their covariance and how to turn them into intervals.

    ``df`` is None for normal (z) intervals, else the t distribution's degrees of freedom."""

    names: list[str]
    params: np.ndarray
    cov: np.ndarray
    df: int | None
    method: str
    log_sd: tuple[float, float] | None = None  # GLMM: log sigma and its standard error
    # GEE: the coefficients of the same model under an independence working correlation, a
    # check on the exchangeable fit (they estimate the same ratios when the model holds)
    independence: np.ndarray | None = None

    def variance(self, confidence: float) -> tuple[float, float | None, float | None] | None:
        """The speaker intercept's variance sigma^2 with a Wald interval on log sigma; no
        interval (None ends) when sigma sits at its boundary, 0, where Wald means nothing."""
        if self.log_sd is None:
            return None
        log_sd, se = self.log_sd
        z = float(stats.norm.ppf(0.5 + confidence / 2))
        low, high = log_sd - z * se, log_sd + z * se
        with np.errstate(over="ignore"):
            ends = float(np.exp(2 * low)), float(np.exp(2 * high))
        if log_sd < BOUNDARY_LOG_SD or not all(np.isfinite(ends)):
            return float(np.exp(2 * log_sd)), None, None
        return float(np.exp(2 * log_sd)), ends[0], ends[1]

    def ratio(self, name: str, confidence: float) -> tuple[float, float, float, float]:
        """exp(beta), its interval and the two-sided p-value of beta = 0."""
        i = self.names.index(name)
        beta, se = float(self.params[i]), float(np.sqrt(self.cov[i, i]))
        dist = stats.norm if self.df is None else stats.t(self.df)
        quantile = float(dist.ppf(0.5 + confidence / 2))
        p = float(2 * dist.sf(abs(beta) / se))
        return (
            float(np.exp(beta)),
            float(np.exp(beta - quantile * se)),
            float(np.exp(beta + quantile * se)),
            p,
        )


def _check_estimates(params: np.ndarray, cov: np.ndarray, what: str) -> None:
    variances = np.diag(cov)
    if not (np.all(np.isfinite(params)) and np.all(np.isfinite(variances))):
        raise FitError(f"the {what} did not converge (its estimates are not finite)")
    if np.any(variances <= 1e-14):  # zero, up to rounding
        raise FitError(
            f"the {what} gave a zero variance: the model fits every utterance exactly (every "
            "word wrong, say), so there is no variation to estimate a ratio's uncertainty from"
        )


def fit_gee(
    errors: np.ndarray,
    offset: np.ndarray,
    design: np.ndarray,
    clusters: np.ndarray,
    names: list[str],
    cov_type: str = "bias-reduced",
) -> Fit:
    """Poisson GEE with an exchangeable working correlation within each speaker.

    The sandwich variance is consistent whatever the true correlation, but too small with
    few speakers: ``bias-reduced`` is Mancl and DeRouen's correction (statsmodels'
    ``bias_reduced``), and intervals use t with K - p degrees of freedom (K speakers,
    p coefficients), the usual small-sample pairing that the plugin's simulation measures.
    """
    from statsmodels.genmod.cov_struct import Exchangeable, Independence
    from statsmodels.genmod.families import Poisson
    from statsmodels.genmod.generalized_estimating_equations import GEE

    n_clusters = len(np.unique(clusters))
    df = n_clusters - design.shape[1]
    if df < 1:
        raise FitError(
            f"{n_clusters} speaker(s) for {design.shape[1]} coefficients: the sandwich "
            "variance needs more speakers than coefficients"
        )
    model = GEE(
        errors, design, groups=clusters, family=Poisson(), cov_struct=Exchangeable(), offset=offset
    )
    check = GEE(
        errors, design, groups=clusters, family=Poisson(), cov_struct=Independence(), offset=offset
    )
    with warnings.catch_warnings(record=True) as caught, np.errstate(all="ignore"):
        warnings.simplefilter("always")
        try:
            result = model.fit(maxiter=200, cov_type=COV_TYPES[cov_type])
            independence = np.asarray(check.fit(maxiter=200).params)
        except (np.linalg.LinAlgError, ValueError, ZeroDivisionError) as exc:
            raise FitError(f"the Poisson GEE failed to fit ({exc})") from None
    failed = [
        w for w in caught if "converge" in str(w.message).lower() or "Singular" in str(w.message)
    ]
    if result is None or failed:
        why = str(failed[0].message) if failed else "no estimates"
        raise FitError(f"the Poisson GEE did not converge ({why.rstrip('.')})")
    params, cov = np.asarray(result.params), np.asarray(result.cov_params())
    _check_estimates(params, cov, "Poisson GEE")
    rho = float(np.atleast_1d(model.cov_struct.dep_params)[0])
    label = {"bias-reduced": "Mancl-DeRouen bias-reduced", "robust": "robust"}[cov_type]
    method = (
        f"Poisson GEE, exchangeable working correlation within speaker (rho = {rho:.3f}), "
        f"{label} sandwich variance over {n_clusters} speakers, t intervals on {df} df"
    )
    return Fit(names, params, cov, df, method, independence=independence)


def _cluster_sums(
    errors: np.ndarray, eta: np.ndarray, index: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per speaker: total errors, sum of exp(eta) and the part of the log-likelihood that does
    not involve the random intercept."""
    y_sum = np.bincount(index, weights=errors, minlength=k)
    e_sum = np.bincount(index, weights=np.exp(eta), minlength=k)
    const = np.bincount(index, weights=errors * eta - special.gammaln(errors + 1), minlength=k)
    return y_sum, e_sum, const


def _modes(y_sum: np.ndarray, e_sum: np.ndarray, var: float) -> tuple[np.ndarray, np.ndarray]:
    """Each speaker's posterior mode of b and the curvature there (Newton; the log-density is
    concave in b, so this converges from 0)."""
    b = np.zeros_like(y_sum)
    for _ in range(50):
        grad = y_sum - e_sum * np.exp(b) - b / var
        curv = e_sum * np.exp(b) + 1 / var
        step = grad / curv
        b += step
        if np.max(np.abs(step)) < 1e-10:
            break
    return b, e_sum * np.exp(b) + 1 / var


def glmm_loglik(
    theta: np.ndarray,
    errors: np.ndarray,
    offset: np.ndarray,
    design: np.ndarray,
    index: np.ndarray,
    k: int,
) -> float:
    """Marginal log-likelihood of the random-intercept Poisson model, by adaptive
    Gauss-Hermite quadrature (20 nodes around each speaker's mode), theta = (beta, log sigma).

    Exact up to the quadrature, unlike statsmodels' PoissonBayesMixedGLM (variational
    Bayes, which also takes no offset)."""
    beta, var = theta[:-1], float(np.exp(2 * theta[-1]))
    eta = offset + design @ beta
    y_sum, e_sum, const = _cluster_sums(errors, eta, index, k)
    mode, curv = _modes(y_sum, e_sum, var)
    nodes, weights = np.polynomial.hermite.hermgauss(QUADRATURE_NODES)
    scale = np.sqrt(2 / curv)
    b = mode[:, None] + scale[:, None] * nodes[None, :]
    log_f = y_sum[:, None] * b - e_sum[:, None] * np.exp(b) - b**2 / (2 * var)
    log_f += np.log(weights)[None, :] + nodes[None, :] ** 2
    integral = special.logsumexp(log_f, axis=1) + np.log(scale) - 0.5 * np.log(2 * np.pi * var)
    return float(np.sum(const + integral))


def fit_glmm(
    errors: np.ndarray,
    offset: np.ndarray,
    design: np.ndarray,
    clusters: np.ndarray,
    names: list[str],
    start: np.ndarray,
) -> Fit:
    """Poisson GLMM with a normal speaker intercept, by maximum likelihood (adaptive quadrature),
    with Wald intervals from the observed information; reports the intercept's variance."""
    from statsmodels.tools.numdiff import approx_hess

    _, index = np.unique(clusters, return_inverse=True)
    k = int(index.max()) + 1

    def negative(theta: np.ndarray) -> float:
        return -glmm_loglik(theta, errors, offset, design, index, k)

    theta0 = np.append(start, np.log(0.3))
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        found = optimize.minimize(negative, theta0, method="BFGS", options={"gtol": 1e-6})
        hessian = approx_hess(found.x, lambda t: -negative(t))
    if not np.isfinite(found.fun) or (not found.success and found.status != 2):
        raise FitError(f"the Poisson GLMM did not converge ({found.message})")
    try:
        cov = np.linalg.inv(-hessian)
    except np.linalg.LinAlgError:
        raise FitError("the Poisson GLMM's information matrix is singular") from None
    _check_estimates(found.x, cov, "Poisson GLMM")
    log_sd = (float(found.x[-1]), float(np.sqrt(cov[-1, -1])))
    method = (
        "Poisson GLMM with a normal speaker intercept, maximum likelihood by adaptive "
        f"Gauss-Hermite quadrature over {k} speakers, Wald z intervals"
    )
    return Fit(names, found.x[:-1], cov[:-1, :-1], None, method, log_sd)


def poisson_start(errors: np.ndarray, offset: np.ndarray, design: np.ndarray) -> np.ndarray:
    """Plain Poisson GLM estimates: the GLMM's starting values."""
    from statsmodels.genmod.families import Poisson
    from statsmodels.genmod.generalized_linear_model import GLM

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(GLM(errors, design, family=Poisson(), offset=offset).fit().params)


def collinear_columns(design: np.ndarray) -> list[int]:
    """Columns that add nothing to the ones before them (numerically dependent): each is
    dropped and named, so a redundant covariate never makes a singular fit."""
    kept: list[int] = []
    dropped = []
    for j in range(design.shape[1]):
        trial = design[:, [*kept, j]]
        if np.linalg.matrix_rank(trial, tol=1e-8 * max(1.0, np.abs(trial).max())) > len(kept):
            kept.append(j)
        else:
            dropped.append(j)
    return dropped
