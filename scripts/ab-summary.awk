# The summary of an A/B results table (scripts/bench-ab.sh, scripts/bench-flow-ab.sh): tab-separated,
# a header line, column 2 names the side, columns 3.. are the measures. For each measure: each
# side's median and range, and b/a of the medians.
#   awk -F'\t' -v a=old -v b=new -f scripts/ab-summary.awk results.tsv
NR == 1 { for (i = 3; i <= NF; i++) name[i] = $i; last = NF; next }
{ n[$2]++; for (i = 3; i <= NF; i++) v[$2, i, n[$2]] = $i }
function median(side, i,   k, m, j, t, arr) {
  m = n[side]; for (k = 1; k <= m; k++) arr[k] = v[side, i, k] + 0
  for (k = 2; k <= m; k++) { t = arr[k]; for (j = k - 1; j >= 1 && arr[j] > t; j--) arr[j + 1] = arr[j]; arr[j + 1] = t }
  lo[side] = arr[1]; hi[side] = arr[m]
  return m % 2 ? arr[(m + 1) / 2] : (arr[m / 2] + arr[m / 2 + 1]) / 2
}
END {
  for (i = 3; i <= last; i++) {
    ma = median(a, i); mb = median(b, i)
    if (ma == 0 && mb == 0) continue
    printf "%-26s %s %9.3f (%.3f-%.3f)   %s %9.3f (%.3f-%.3f)   %s/%s %.3f\n", name[i], a, ma, lo[a], hi[a], b, mb, lo[b], hi[b], b, a, (ma > 0 ? mb / ma : 0)
  }
}
