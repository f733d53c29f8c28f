package buildinfo

import (
	"runtime/debug"
	"testing"
)

func TestVersionOf(t *testing.T) {
	vcs := func(rev, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}
	}
	const rev = "2f0ede0f54b8902dcf673fa96b762012921eda7d"
	tests := []struct {
		name, set string
		info      *debug.BuildInfo
		want      string
	}{
		{"SetAtBuildTime", "v1.2.3", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "v1.2.3"},
		{"ModuleVersion", "", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261203081309-2f0ede0f54b8+dirty"}, Settings: vcs(rev, "true")}, "v0.0.0-20261203081309-2f0ede0f54b8+dirty"},
		{"Revision", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs(rev, "false")}, "2f0ede0f54b8"},
		{"RevisionModified", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs(rev, "true")}, "2f0ede0f54b8+dirty"},
		{"NoVCS", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "unknown (built without version control information)"},
		{"NoBuildInfo", "", nil, "unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := versionOf(tt.set, tt.info); got != tt.want {
				t.Errorf("versionOf = %q, want %q", got, tt.want)
			}
		})
	}
}
