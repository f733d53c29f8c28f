package store_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// citusRules are constructs that Citus rejects, or that stop a statement
// from running on the one shard of a meter, when readings and meters are
// distributed by meter id (docs/scaling.md). They are checked on every SQL
// literal of the store: a lint, not a run on Citus.
var citusRules = []struct {
	name string
	bad  func(sql string) bool
}{
	{"table lock (LOCK TABLE)", match(`\bLOCK\s+TABLE\b`)},
	{"explicit sequence access (nextval/currval/lastval/setval)", match(`\b(nextval|currval|lastval|setval)\s*\(`)},
	{"temporary table", match(`\bCREATE\s+(TEMP|TEMPORARY)\b`)},
	{"row lock on a statement not pinned to one meter", func(q string) bool {
		return match(`\bFOR\s+(UPDATE|SHARE)\b`)(q) && !match(`\b(meter_)?id\s*=\s*\$\d`)(q)
	}},
	{"join of readings and meters not on the meter id (not co-located)", func(q string) bool {
		return match(`\bmeters\b`)(q) && match(`\breadings\b`)(q) && match(`\bJOIN\b`)(q) && !match(`meter_id\s*=\s*m\.id`)(q)
	}},
}

func match(expr string) func(string) bool {
	re := regexp.MustCompile(`(?is)` + expr)
	return re.MatchString
}

// TestCitusCompatibleSQL applies citusRules to every SQL literal of the
// store's code.
func TestCitusCompatibleSQL(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	isSQL := match(`^\s*(SELECT|INSERT|UPDATE|DELETE|WITH|CREATE|ALTER|DROP)\b`)
	checked := 0
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			q, err := strconv.Unquote(lit.Value)
			if err != nil || !isSQL(q) {
				return true
			}
			checked++
			for _, r := range citusRules {
				if r.bad(q) {
					t.Errorf("%s: %s:\n%s", fset.Position(lit.Pos()), r.name, q)
				}
			}
			return true
		})
	}
	if checked < 20 {
		t.Fatalf("found only %d SQL literals; is the scan broken?", checked)
	}
	t.Logf("%d SQL literals checked", checked)
}
