# Is relcap's optimum of the national H3 model as good as lme4's? Fits the bench's H3 sample
# (written by `relcap bench` as national/h3_sample.csv) with lme4 and a strict bobyqa, then
# evaluates lme4's REML criterion along the line through relcap's θ and lme4's.
# Run: Rscript h3_lme4_optimum.R h3_sample.csv THETA_1 THETA_2 THETA_3
# relcap's θ in lme4's order (respondent_id, unit_id:post, unit_id): the square roots of the
# variance components of the pooled `cluster_did` over the residual variance
# (model/variance_components.parquet). Used for docs/performance ("Targets and where they stand").
suppressPackageStartupMessages({ library(lme4) })
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1], colClasses = c("numeric", "numeric", "numeric", "character",
                                      "character", "character"), encoding = "UTF-8")
C <- function(object, ...) factor(object, levels = sort(unique(object), method = "radix"))
f <- rcap ~ post + intervention + post:intervention + C(municipality) + (1 | respondent_id) +
  (1 | unit_id) + (1 | unit_id:post)
ctl <- lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12, maxfun = 1e5))
t <- system.time(m <- lmer(f, data = d, REML = TRUE, control = ctl))
co <- summary(m)$coefficients
write.csv(data.frame(name = rownames(co), value = co[, "Estimate"],
                     std_error = co[, "Std. Error"]),
          "h3_lme4_strict_estimates.csv", row.names = FALSE)
b <- getME(m, "theta")
cat(sprintf("strict lmer %.1f s; theta %s\n", t[["elapsed"]], paste(b, collapse = " ")))
dev <- lmer(f, data = d, REML = TRUE, devFunOnly = TRUE)
a <- as.numeric(args[2:4])
for (s in c(-1, 0, 0.25, 0.5, 0.75, 1, 1.5, 2, 3)) {
  cat(sprintf("relcap + %5.2f (lme4 - relcap): REML %.7f\n", s, dev(a + s * (b - a))))
}
