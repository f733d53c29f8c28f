// Package buildinfo names the build of the running binary: its version,
// which `smartmeters version` prints and the smartmeters_build_info metric
// carries.
package buildinfo

import (
	"runtime"
	"runtime/debug"
)

// version is set at build time with
// -ldflags "-X smartmeters/buildinfo.version=…"; otherwise Version reads
// the build information the Go toolchain records.
var version = ""

// Version returns the version of this binary: the one set at build time,
// else the main module's version (with Go 1.24 and later, `go build` in a
// git checkout records a pseudo-version such as
// v0.0.0-20261203081309-2f0ede0f54b8, +dirty with uncommitted changes),
// else the VCS revision, else "unknown".
func Version() string {
	info, _ := debug.ReadBuildInfo()
	return versionOf(version, info)
}

// GoVersion returns the Go version the binary was built with.
func GoVersion() string { return runtime.Version() }

// versionOf is Version for a build-time version v and the build
// information info (nil if the binary has none).
func versionOf(v string, info *debug.BuildInfo) string {
	if v != "" {
		return v
	}
	if info == nil {
		return "unknown"
	}
	if mv := info.Main.Version; mv != "" && mv != "(devel)" {
		return mv
	}
	var rev, dirty string
	for _, s := range info.Settings {
		switch {
		case s.Key == "vcs.revision":
			rev = s.Value[:min(12, len(s.Value))]
		case s.Key == "vcs.modified" && s.Value == "true":
			dirty = "+dirty"
		}
	}
	if rev != "" {
		return rev + dirty
	}
	// Built without version control information: outside a git checkout,
	// with -buildvcs=false, or by go run.
	return "unknown (built without version control information)"
}
