// f_distribution.hpp — the F distribution, for the nested-model F test that
// turns "the memory law is linear" into a p-value. Implemented here (no
// statistics library among the dependencies) via the regularized incomplete
// beta function, evaluated by its continued fraction (modified Lentz).
#pragma once

#include <optional>

namespace sctape::fit {

// I_x(a, b) for a, b > 0, 0 <= x <= 1.
double regularized_incomplete_beta(double a, double b, double x);

// P(F <= f) for F ~ F(d1, d2), and its complement computed without the
// cancellation of 1 − cdf (small p-values keep their digits).
double f_cdf(double f, double d1, double d2);
double f_survival(double f, double d1, double d2);

// p-value of the improvement from a model with p_small coefficients to a
// nested one with p_big, given their residual sums of squares over n points:
// F = ((rss_small − rss_big)/(p_big − p_small)) / (rss_big/(n − p_big)).
// nullopt when untestable (p_big <= p_small or n <= p_big). A small model that
// already fits to rounding gives 1; a big one that fits exactly gives 0.
std::optional<double> nested_f_test(double rss_small, int p_small, double rss_big, int p_big, int n);

}  // namespace sctape::fit
