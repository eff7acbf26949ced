#include "least_squares.hpp"

#include <cmath>
#include <limits>
#include <string>

namespace sctape::fit {
namespace {

// Pivots below this fraction of the largest count as zero: the columns are
// unit-norm, so this is a condition-number bound, far above rounding (1e-16)
// and far below any design a real sweep produces.
constexpr double kRankThreshold = 1e-10;

void require_positive(const Eigen::VectorXd& y) {
    for (Eigen::Index i = 0; i < y.size(); ++i)
        if (!(std::isfinite(y[i]) && y[i] > 0))
            throw FitError("point " + std::to_string(i) + " has bytes = " + std::to_string(y[i]) +
                           ": relative weights need bytes > 0");
}

// Rows divided by y (the relative weighting), then columns scaled to unit
// norm; `scale` receives the column factors to undo it.
Eigen::MatrixXd weighted_scaled(const Eigen::MatrixXd& a, const Eigen::VectorXd& y, Eigen::VectorXd& scale) {
    Eigen::MatrixXd b = y.cwiseInverse().asDiagonal() * a;
    scale.resize(b.cols());
    for (Eigen::Index j = 0; j < b.cols(); ++j) {
        const double norm = b.col(j).norm();
        scale[j] = norm > 0 ? 1.0 / norm : 1.0;
        b.col(j) *= scale[j];
    }
    return b;
}

Eigen::ColPivHouseholderQR<Eigen::MatrixXd> decompose(const Eigen::MatrixXd& b) {
    Eigen::ColPivHouseholderQR<Eigen::MatrixXd> qr(b);
    qr.setThreshold(kRankThreshold);
    return qr;
}

// diag((BᵀB)⁻¹) for B·P = Q·R: (BᵀB)⁻¹ = P·R⁻¹·R⁻ᵀ·Pᵀ.
Eigen::VectorXd inverse_normal_diagonal(const Eigen::ColPivHouseholderQR<Eigen::MatrixXd>& qr) {
    const Eigen::Index p = qr.cols();
    const Eigen::MatrixXd r = qr.matrixR().topLeftCorner(p, p).triangularView<Eigen::Upper>();
    const Eigen::MatrixXd r_inv = r.triangularView<Eigen::Upper>().solve(Eigen::MatrixXd::Identity(p, p));
    const Eigen::VectorXd permuted = r_inv.rowwise().squaredNorm();
    return qr.colsPermutation() * permuted;
}

}  // namespace

int weighted_rank(const Eigen::MatrixXd& design, const Eigen::VectorXd& y) {
    Eigen::VectorXd scale;
    return static_cast<int>(decompose(weighted_scaled(design, y, scale)).rank());
}

std::vector<int> independent_columns(const Eigen::MatrixXd& design, const Eigen::VectorXd& y) {
    std::vector<int> kept;
    for (int j = 0; j < design.cols(); ++j) {
        Eigen::MatrixXd trial(design.rows(), static_cast<Eigen::Index>(kept.size()) + 1);
        for (std::size_t k = 0; k < kept.size(); ++k) trial.col(k) = design.col(kept[k]);
        trial.col(trial.cols() - 1) = design.col(j);
        if (weighted_rank(trial, y) == trial.cols()) kept.push_back(j);
    }
    return kept;
}

LeastSquares relative_least_squares(const Eigen::MatrixXd& design, const Eigen::VectorXd& y) {
    const Eigen::Index n = design.rows(), p = design.cols();
    if (n < p)
        throw FitError(std::to_string(n) + " points for " + std::to_string(p) + " unknowns: need at least " +
                       std::to_string(p));
    require_positive(y);
    Eigen::VectorXd scale;
    const Eigen::MatrixXd b = weighted_scaled(design, y, scale);
    const auto qr = decompose(b);
    if (qr.rank() < p) throw FitError("singular design: the points cannot separate the coefficients");

    LeastSquares r;
    r.n_points = static_cast<int>(n);
    const Eigen::VectorXd scaled = qr.solve(Eigen::VectorXd::Ones(n));
    r.coefficients = scaled.cwiseProduct(scale);
    const Eigen::VectorXd relative = (design * r.coefficients - y).cwiseQuotient(y);
    r.rss = relative.squaredNorm();
    r.max_relative_residual = relative.cwiseAbs().maxCoeff();
    const double variance = n > p ? r.rss / double(n - p) : std::numeric_limits<double>::quiet_NaN();
    r.stderrs = (variance * inverse_normal_diagonal(qr)).cwiseSqrt().cwiseProduct(scale);
    return r;
}

}  // namespace sctape::fit
