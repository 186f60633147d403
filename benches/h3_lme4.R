# Times R's lme4 on the rows of the national H3 model sample, written by `relcap bench` (which
# also writes this script beside the CSV and reads its output).
# Run: Rscript h3_lme4.R h3_sample.csv estimates.csv
# The model is the model stage's pooled primary H3 model, `cluster_did` (panel design), REML:
#   rcap ~ post + intervention + post:intervention + C(municipality) + (1 | respondent_id) +
#     (1 | unit_id) + (1 | unit_id:post)
# (lme4 makes the unit x period grouping factor of `unit_id:post` as relcap does).
# Factor levels are sorted in byte order (method = "radix"), as relcap sorts them, so both use
# the same reference municipality whatever the locale.
suppressPackageStartupMessages({ library(lme4); library(lmerTest) })
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1], colClasses = c("numeric", "numeric", "numeric", "character",
                                      "character", "character"), encoding = "UTF-8")
C <- function(object, ...) factor(object, levels = sort(unique(object), method = "radix"))
f <- rcap ~ post + intervention + post:intervention + C(municipality) + (1 | respondent_id) +
  (1 | unit_id) + (1 | unit_id:post)
t_lme4 <- system.time(m <- lme4::lmer(f, data = d, REML = TRUE))
t_lt <- system.time({
  m2 <- lmerTest::lmer(f, data = d, REML = TRUE)
  s <- summary(m2)
})
co <- s$coefficients
vc <- as.data.frame(VarCorr(m))
out <- rbind(
  data.frame(kind = "coef", name = rownames(co), value = co[, "Estimate"],
             std_error = co[, "Std. Error"]),
  data.frame(kind = "var", name = vc$grp, value = vc$vcov, std_error = NA),
  data.frame(kind = "time", name = c("lmer", "lmertest_summary"),
             value = c(t_lme4[["elapsed"]], t_lt[["elapsed"]]), std_error = NA)
)
write.csv(out, args[2], row.names = FALSE)
cat(sprintf("rows %d; lme4::lmer %.2f s; lmerTest::lmer + summary %.2f s\n", nrow(d),
            t_lme4[["elapsed"]], t_lt[["elapsed"]]))
