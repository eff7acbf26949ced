#include "f_distribution.hpp"

#include <cmath>
#include <stdexcept>

namespace sctape::fit {
namespace {

constexpr int kMaxIterations = 10000;
constexpr double kEpsilon = 1e-15;
constexpr double kTiny = 1e-300;
// Relative residuals below ~1e-9 are rounding of integer byte counts, not a
// departure from the law: an RSS below n·(1e-9)² counts as an exact fit.
constexpr double kExactRss = 1e-18;

double guard(double v) { return std::fabs(v) < kTiny ? kTiny : v; }

// Continued fraction for I_x(a, b) (Numerical Recipes' betacf, modified
// Lentz); converges fast for x < (a + 1)/(a + b + 2).
double beta_continued_fraction(double a, double b, double x) {
    const double qab = a + b, qap = a + 1, qam = a - 1;
    double c = 1, d = 1 / guard(1 - qab * x / qap), h = d;
    for (int m = 1; m <= kMaxIterations; ++m) {
        const double m2 = 2.0 * m;
        double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1 / guard(1 + aa * d);
        c = guard(1 + aa / c);
        h *= d * c;
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1 / guard(1 + aa * d);
        c = guard(1 + aa / c);
        const double step = d * c;
        h *= step;
        if (std::fabs(step - 1) < kEpsilon) return h;
    }
    throw std::runtime_error("incomplete beta: continued fraction did not converge");
}

}  // namespace

double regularized_incomplete_beta(double a, double b, double x) {
    if (!(a > 0 && b > 0) || !(x >= 0 && x <= 1))
        throw std::domain_error("incomplete beta: need a, b > 0 and 0 <= x <= 1");
    if (x == 0 || x == 1) return x;
    const double log_front =
        std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) + b * std::log1p(-x);
    if (x < (a + 1) / (a + b + 2)) return std::exp(log_front) * beta_continued_fraction(a, b, x) / a;
    return 1 - std::exp(log_front) * beta_continued_fraction(b, a, 1 - x) / b;
}

double f_cdf(double f, double d1, double d2) {
    if (f <= 0) return 0;
    if (std::isinf(f)) return 1;
    return regularized_incomplete_beta(d1 / 2, d2 / 2, d1 * f / (d1 * f + d2));
}

double f_survival(double f, double d1, double d2) {
    if (f <= 0) return 1;
    if (std::isinf(f)) return 0;
    return regularized_incomplete_beta(d2 / 2, d1 / 2, d2 / (d2 + d1 * f));
}

std::optional<double> nested_f_test(double rss_small, int p_small, double rss_big, int p_big, int n) {
    if (p_big <= p_small || n <= p_big) return std::nullopt;
    if (rss_small <= kExactRss * n) return 1.0;
    if (rss_big <= kExactRss * n) return 0.0;
    const double d1 = p_big - p_small, d2 = n - p_big;
    const double f = std::max(0.0, (rss_small - rss_big) / d1) / (rss_big / d2);
    return f_survival(f, d1, d2);
}

}  // namespace sctape::fit
