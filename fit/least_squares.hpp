// least_squares.hpp — relative-weighted least squares (the memory-scaling
// paper, App. D): minimize Σ((A·x − y)/y)², i.e. ordinary least squares on the
// rows of A divided by y with target 1, so the small end of a sweep that spans
// orders of magnitude counts as much as the large end.
//
//   Eigen::MatrixXd A(n, 2);  // columns N_part, N_cells
//   auto r = sctape::fit::relative_least_squares(A, y);
//   r.coefficients[0] ± r.stderrs[0] ...
#pragma once

#include <Eigen/Dense>
#include <stdexcept>
#include <vector>

namespace sctape::fit {

// Bad input to a fit (too few points, singular design, y <= 0, ...).
class FitError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct LeastSquares {
    Eigen::VectorXd coefficients;
    // Standard errors from the weighted residual variance RSS/(n − p) times
    // (AᵀWA)⁻¹, W = diag(1/y²). NaN when n == p (no residual degrees of freedom).
    Eigen::VectorXd stderrs;
    double rss = 0;                    // Σ relative residual²
    double max_relative_residual = 0;  // max |A·x − y| / y
    int n_points = 0;
};

// Throws FitError when n < columns, y has a value <= 0 or non-finite, or the
// design is singular under the weights (rank < columns).
LeastSquares relative_least_squares(const Eigen::MatrixXd& design, const Eigen::VectorXd& y);

// Rank of the weighted design with its columns scaled to unit norm (so that
// N_part² next to N_part does not look singular just by magnitude).
int weighted_rank(const Eigen::MatrixXd& design, const Eigen::VectorXd& y);

// Indices of the columns, taken in order, that each raise the weighted rank:
// the extended "is it linear?" model drops terms the points cannot separate.
std::vector<int> independent_columns(const Eigen::MatrixXd& design, const Eigen::VectorXd& y);

}  // namespace sctape::fit
