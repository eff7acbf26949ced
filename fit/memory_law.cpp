#include "memory_law.hpp"

#include <cmath>
#include <set>
#include <sstream>

#include "f_distribution.hpp"

namespace sctape::fit {
namespace {

std::string number(double v) {
    std::ostringstream s;
    s << v;
    return s.str();
}

Coefficient coefficient(const LeastSquares& r, int i) {
    Coefficient c{r.coefficients[i], std::nullopt};
    if (std::isfinite(r.stderrs[i])) c.stderr_ = r.stderrs[i];
    return c;
}

void require_finite_nonnegative(double v, const char* what, std::size_t i) {
    if (!(std::isfinite(v) && v >= 0))
        throw FitError("point " + std::to_string(i) + " has " + what + " = " + number(v) +
                       ": must be a finite number >= 0");
}

bool all_zero(const Eigen::VectorXd& y) { return (y.array() == 0).all(); }

void require_positive(const Eigen::VectorXd& y, const std::vector<LawPoint>& points) {
    for (std::size_t i = 0; i < points.size(); ++i)
        if (!(std::isfinite(y[i]) && y[i] > 0))
            throw FitError("point " + std::to_string(i) + " (N_part " + number(points[i].n_part) + ", N_cells " +
                           number(points[i].n_cells) + ") has bytes = " + number(y[i]) +
                           ": relative weights need bytes > 0");
}

// The paper's observation that the law is linear cannot be tested, nor the
// two coefficients separated, from a single value of either variable.
void require_two_values(const std::vector<LawPoint>& points) {
    std::set<double> parts, cells;
    for (const auto& p : points) parts.insert(p.n_part), cells.insert(p.n_cells);
    if (parts.size() < 2)
        throw FitError("singular design: every point has N_part = " + number(*parts.begin()) +
                       " (need at least two distinct N_part to separate alpha_part)");
    if (cells.size() < 2)
        throw FitError("singular design: every point has N_cells = " + number(*cells.begin()) +
                       " (need at least two distinct N_cells to separate alpha_cells)");
}

// Columns N_part, N_cells [, 1] then the extension N_part·N_cells, N_part², N_cells².
Eigen::MatrixXd law_design(const std::vector<LawPoint>& points, bool with_constant, bool extended) {
    const int base = with_constant ? 3 : 2;
    Eigen::MatrixXd a(points.size(), base + (extended ? 3 : 0));
    for (std::size_t i = 0; i < points.size(); ++i) {
        const double np = points[i].n_part, nc = points[i].n_cells;
        a(i, 0) = np;
        a(i, 1) = nc;
        if (with_constant) a(i, 2) = 1;
        if (extended) a.row(i).tail(3) << np * nc, np * np, nc * nc;
    }
    return a;
}

struct Linearity {
    std::optional<double> p_value;
    std::string note;
};

// F test of `base` against `extended` (whose first base.cols() columns are
// base), keeping only extra columns the points can separate.
Linearity linearity_test(const Eigen::MatrixXd& extended, const Eigen::VectorXd& y, const LeastSquares& base) {
    const std::vector<int> kept = independent_columns(extended, y);
    const int p_small = static_cast<int>(base.coefficients.size());
    const int p_big = static_cast<int>(kept.size());
    if (p_big <= p_small) return {std::nullopt, "linearity untestable: the points cannot separate nonlinear terms"};
    const int n = base.n_points;
    if (n <= p_big)
        return {std::nullopt, "linearity untestable: " + std::to_string(n) + " points for " +
                                  std::to_string(p_big) + " coefficients of the extended model"};
    Eigen::MatrixXd a(extended.rows(), p_big);
    for (int k = 0; k < p_big; ++k) a.col(k) = extended.col(kept[k]);
    const LeastSquares big = relative_least_squares(a, y);
    return {nested_f_test(base.rss, p_small, big.rss, p_big, n), ""};
}

std::string join_notes(const std::string& a, const std::string& b) {
    if (a.empty()) return b;
    if (b.empty()) return a;
    return a + "; " + b;
}

std::string stderr_note(const LeastSquares& r) {
    return r.n_points == r.coefficients.size() ? "standard errors undefined: as many points as unknowns" : "";
}

}  // namespace

LawFit fit_memory_law(const std::vector<LawPoint>& points, bool with_constant) {
    if (points.empty()) throw FitError("no points to fit");
    Eigen::VectorXd y(points.size());
    for (std::size_t i = 0; i < points.size(); ++i) {
        require_finite_nonnegative(points[i].n_part, "N_part", i);
        require_finite_nonnegative(points[i].n_cells, "N_cells", i);
        y[i] = points[i].bytes;
    }
    const int unknowns = with_constant ? 3 : 2;
    if (int(points.size()) < unknowns)
        throw FitError(std::to_string(points.size()) + " point(s) for " + std::to_string(unknowns) +
                       " unknowns: need at least " + std::to_string(unknowns));
    require_two_values(points);

    LawFit fit;
    fit.n_points = static_cast<int>(points.size());
    if (all_zero(y)) {
        if (with_constant) fit.alpha_0 = Coefficient{0, 0.0};
        fit.alpha_part.stderr_ = fit.alpha_cells.stderr_ = 0.0;
        fit.note = "all bytes are 0: coefficients reported as 0, not fitted (relative weights need bytes > 0)";
        return fit;
    }
    require_positive(y, points);
    LeastSquares r;
    try {
        r = relative_least_squares(law_design(points, with_constant, false), y);
    } catch (const FitError&) {
        throw FitError(std::string("singular design: N_part and N_cells") + (with_constant ? " and the constant" : "") +
                       " are linearly dependent across the points (vary them independently)");
    }
    fit.alpha_part = coefficient(r, 0);
    fit.alpha_cells = coefficient(r, 1);
    if (with_constant) fit.alpha_0 = coefficient(r, 2);
    fit.max_relative_residual = r.max_relative_residual;
    const Linearity lin = linearity_test(law_design(points, with_constant, true), y, r);
    fit.linearity_p_value = lin.p_value;
    fit.note = join_notes(stderr_note(r), lin.note);
    return fit;
}

KickFit fit_kick_scaling(const std::vector<KickPoint>& points) {
    std::set<double> kicks;
    Eigen::MatrixXd a(points.size(), 3);
    Eigen::VectorXd y(points.size());
    for (std::size_t i = 0; i < points.size(); ++i) {
        const double k = points[i].n_kicks;
        if (!(std::isfinite(k) && k >= 0))
            throw FitError("point " + std::to_string(i) + " has N_kicks = " + number(k) + ": must be finite and >= 0");
        if (!(std::isfinite(points[i].bytes) && points[i].bytes > 0))
            throw FitError("point " + std::to_string(i) + " (N_kicks " + number(k) + ") has bytes = " +
                           number(points[i].bytes) + ": relative weights need bytes > 0");
        kicks.insert(k);
        a.row(i) << k, 1, k * k;
        y[i] = points[i].bytes;
    }
    if (kicks.size() < 2) throw FitError("kick scaling needs at least two distinct N_kicks");
    const LeastSquares r = relative_least_squares(a.leftCols(2), y);
    KickFit fit;
    fit.slope = coefficient(r, 0);
    fit.intercept = coefficient(r, 1);
    fit.max_relative_residual = r.max_relative_residual;
    fit.n_points = r.n_points;
    const Linearity lin = linearity_test(a, y, r);
    fit.linearity_p_value = lin.p_value;
    fit.note = join_notes(stderr_note(r), lin.note);
    return fit;
}

}  // namespace sctape::fit
