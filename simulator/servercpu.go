package simulator

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// serverCPU reads the server's process_cpu_seconds_total from the admin
// listener's /metrics: the CPU time, user and system, that the server
// process has used since it started.
func serverCPU(ctx context.Context, hc *http.Client, adminURL string) (float64, error) {
	url := strings.TrimRight(adminURL, "/") + "/metrics"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	res, err := hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("read the server's CPU time: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("read the server's CPU time: GET %s: %s", url, res.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(res.Body)
	if err != nil {
		return 0, fmt.Errorf("read the server's CPU time: %s: %w", url, err)
	}
	f, ok := families["process_cpu_seconds_total"]
	if !ok || len(f.GetMetric()) != 1 {
		return 0, fmt.Errorf("read the server's CPU time: %s has no process_cpu_seconds_total", url)
	}
	return f.GetMetric()[0].GetCounter().GetValue(), nil
}
