# Times lme4's lmer (and lmerTest's Satterthwaite summary) on the benchmark data written by
# `RELCAP_BENCH_CSV=/tmp/relcap_bench.csv cargo bench -p relcap-stats --bench lmm`.
# Run: Rscript pipeline/stats/benches/lmm_bench.R /tmp/relcap_bench.csv
suppressPackageStartupMessages({ library(lme4); library(lmerTest) })
args <- commandArgs(trailingOnly = TRUE)
path <- if (length(args)) args[1] else "/tmp/relcap_bench.csv"
d <- read.csv(path, colClasses = c("numeric", "numeric", "numeric", "character", "character"))
cat("rows", nrow(d), "\n")
C <- function(object, ...) factor(object)
t_lme4 <- system.time(m <- lme4::lmer(y ~ x + C(wave) + (1 | unit/resp), data = d, REML = TRUE))
cat(sprintf("lme4::lmer (default nloptwrap): %.2f s elapsed\n", t_lme4[["elapsed"]]))
cat(sprintf("REML criterion %.6f\n", REMLcrit(m)))
print(as.data.frame(VarCorr(m))[, c("grp", "vcov")], digits = 10)
print(fixef(m), digits = 10)
t_lt <- system.time({
  m2 <- lmerTest::lmer(y ~ x + C(wave) + (1 | unit/resp), data = d, REML = TRUE)
  s <- summary(m2)
})
cat(sprintf("lmerTest::lmer + summary (Satterthwaite): %.2f s elapsed\n", t_lt[["elapsed"]]))
print(s$coefficients, digits = 10)
