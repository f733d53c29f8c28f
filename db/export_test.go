package db

// Exported for the tests of package db_test.

// DistributionPlan returns each distributed table and its distribution
// column, and the constraints Distribute drops. Reference tables have
// the column "".
func DistributionPlan() (columns map[string]string, dropped []string) {
	columns = map[string]string{}
	for _, d := range distribution {
		columns[d.table] = d.column
	}
	for _, t := range referenceTables {
		columns[t] = ""
	}
	return columns, meterUniques
}
