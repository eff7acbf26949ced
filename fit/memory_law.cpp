#include "memory_law.hpp"

#include <algorithm>
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

// Columns N_part, N_cells, 1 (the affine law), then the nonlinear terms
// N_part·N_cells, N_part², N_cells².
Eigen::MatrixXd law_design(const std::vector<LawPoint>& points) {
    Eigen::MatrixXd a(points.size(), 6);
    for (std::size_t i = 0; i < points.size(); ++i) {
        const double np = points[i].n_part, nc = points[i].n_cells;
        a.row(i) << np, nc, 1, np * nc, np * np, nc * nc;
    }
    return a;
}

struct Linearity {
    std::optional<double> p_value;
    std::string note;
};

Eigen::MatrixXd columns(const Eigen::MatrixXd& a, const std::vector<int>& which) {
    Eigen::MatrixXd out(a.rows(), static_cast<Eigen::Index>(which.size()));
    for (std::size_t k = 0; k < which.size(); ++k) out.col(k) = a.col(which[k]);
    return out;
}

// F test of the affine law (the first `affine` columns of `design`, the
// constant among them) against it plus the nonlinear columns the points can
// separate. The constant is in both models on purpose: a small fixed offset
// (a few scalars per kick) is not a nonlinearity; whether the law without a
// constant fits is what max_relative_residual says.
Linearity linearity_test(const Eigen::MatrixXd& design, int affine, const Eigen::VectorXd& y) {
    const std::vector<int> big = independent_columns(design, y);
    std::vector<int> small;
    for (int c : big)
        if (c < affine) small.push_back(c);
    const int n = static_cast<int>(design.rows()), p_small = int(small.size()), p_big = int(big.size());
    if (p_big == p_small) return {std::nullopt, "linearity untestable: the points cannot separate nonlinear terms"};
    if (n <= p_big)
        return {std::nullopt, "linearity untestable: " + std::to_string(n) + " points for " + std::to_string(p_big) +
                                  " coefficients of the extended model"};
    const double rss_small = relative_least_squares(columns(design, small), y).rss;
    const double rss_big = relative_least_squares(columns(design, big), y).rss;
    return {nested_f_test(rss_small, p_small, rss_big, p_big, n), ""};
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

void check_law_design(const std::vector<LawPoint>& points, bool with_constant) {
    if (points.empty()) throw FitError("no points to fit");
    for (std::size_t i = 0; i < points.size(); ++i) {
        require_finite_nonnegative(points[i].n_part, "N_part", i);
        require_finite_nonnegative(points[i].n_cells, "N_cells", i);
    }
    const int unknowns = with_constant ? 3 : 2;
    if (int(points.size()) < unknowns)
        throw FitError(std::to_string(points.size()) + " point(s) for " + std::to_string(unknowns) +
                       " unknowns: need at least " + std::to_string(unknowns));
    require_two_values(points);
    // diagonal positive weights do not change the rank: unit weights will do
    if (weighted_rank(law_design(points).leftCols(unknowns), Eigen::VectorXd::Ones(points.size())) < unknowns)
        throw FitError(std::string("singular design: N_part and N_cells") + (with_constant ? " and the constant" : "") +
                       " are linearly dependent across the points (vary them independently)");
}

LawFit fit_memory_law(const std::vector<LawPoint>& points, bool with_constant) {
    check_law_design(points, with_constant);
    const int unknowns = with_constant ? 3 : 2;
    Eigen::VectorXd y(points.size());
    for (std::size_t i = 0; i < points.size(); ++i) y[i] = points[i].bytes;

    LawFit fit;
    fit.n_points = static_cast<int>(points.size());
    if (all_zero(y)) {
        if (with_constant) fit.alpha_0 = Coefficient{0, 0.0};
        fit.alpha_part.stderr_ = fit.alpha_cells.stderr_ = 0.0;
        fit.note = "all bytes are 0: coefficients reported as 0, not fitted (relative weights need bytes > 0)";
        return fit;
    }
    require_positive(y, points);
    const Eigen::MatrixXd design = law_design(points);
    const LeastSquares r = relative_least_squares(design.leftCols(unknowns), y);
    fit.alpha_part = coefficient(r, 0);
    fit.alpha_cells = coefficient(r, 1);
    if (with_constant) fit.alpha_0 = coefficient(r, 2);
    fit.max_relative_residual = r.max_relative_residual;
    const Linearity lin = linearity_test(design, 3, y);
    fit.linearity_p_value = lin.p_value;
    fit.note = join_notes(stderr_note(r), lin.note);
    return fit;
}

namespace {

double law_at(const LawFit& f, const LawPoint& p) {
    return f.alpha_part.value * p.n_part + f.alpha_cells.value * p.n_cells + (f.alpha_0 ? f.alpha_0->value : 0.0);
}

std::vector<LawPoint> members(const std::vector<LawPoint>& points, const std::vector<int>& group, int which) {
    std::vector<LawPoint> out;
    for (std::size_t i = 0; i < points.size(); ++i)
        if (group[i] == which) out.push_back(points[i]);
    return out;
}

}  // namespace

LargerOfTwoFit fit_larger_of_two_laws(const std::vector<LawPoint>& points) {
    const LawFit all = fit_memory_law(points, true);
    // start from the split by particles per cell: the upper half particle-bound
    std::vector<std::size_t> order(points.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
        return points[a].n_part * points[b].n_cells > points[b].n_part * points[a].n_cells;
    });
    std::vector<int> group(points.size(), 1);
    for (std::size_t k = 0; k < order.size() / 2; ++k) group[order[k]] = 0;
    LargerOfTwoFit best{all, all};
    constexpr int kMaxRounds = 50;  // the split settles in a few
    for (int round = 0; round < kMaxRounds; ++round) {
        LargerOfTwoFit f;
        try {
            f = {fit_memory_law(members(points, group, 0), true), fit_memory_law(members(points, group, 1), true)};
        } catch (const FitError&) {
            break;  // a phase with too few points to fit: keep the last fit
        }
        best = f;
        std::vector<int> next(points.size());
        for (std::size_t i = 0; i < points.size(); ++i) next[i] = law_at(f.particles, points[i]) >= law_at(f.grid, points[i]) ? 0 : 1;
        if (next == group) break;
        group = next;
    }
    if (best.particles.alpha_part.value < best.grid.alpha_part.value) std::swap(best.particles, best.grid);
    return best;
}

KickFit fit_kick_scaling(const std::vector<KickPoint>& points) {
    std::set<double> kicks;
    Eigen::MatrixXd a(points.size(), 3);
    Eigen::VectorXd y(points.size());
    for (std::size_t i = 0; i < points.size(); ++i) {
        const double k = points[i].n_kicks;
        if (!(std::isfinite(k) && k >= 0))
            throw FitError("point " + std::to_string(i) + " has N_kicks = " + number(k) + ": must be finite and >= 0");
        kicks.insert(k);
        a.row(i) << k, 1, k * k;
        y[i] = points[i].bytes;
    }
    if (kicks.size() < 2) throw FitError("kick scaling needs at least two distinct N_kicks");
    KickFit fit;
    fit.n_points = static_cast<int>(points.size());
    if (all_zero(y)) {
        fit.slope.stderr_ = fit.intercept.stderr_ = 0.0;
        fit.note = "all bytes are 0: slope and intercept reported as 0, not fitted (relative weights need bytes > 0)";
        return fit;
    }
    for (std::size_t i = 0; i < points.size(); ++i)
        if (!(std::isfinite(y[i]) && y[i] > 0))
            throw FitError("point " + std::to_string(i) + " (N_kicks " + number(points[i].n_kicks) + ") has bytes = " +
                           number(y[i]) + ": relative weights need bytes > 0");
    const LeastSquares r = relative_least_squares(a.leftCols(2), y);
    fit.slope = coefficient(r, 0);
    fit.intercept = coefficient(r, 1);
    fit.max_relative_residual = r.max_relative_residual;
    fit.n_points = r.n_points;
    const Linearity lin = linearity_test(a, 2, y);
    fit.linearity_p_value = lin.p_value;
    fit.note = join_notes(stderr_note(r), lin.note);
    return fit;
}

}  // namespace sctape::fit
