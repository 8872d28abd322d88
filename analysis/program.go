package analysis

import (
	"reflect"
	"runtime/debug"
	"strings"
	"sync"
)

// A diagnosis names places by the first frame of a stack in the program's
// own code: a wait in errgroup.(*Group).Wait called from main.handler is
// main.handler's. Frames fall in classes, in the order a place is chosen
// from them: the program, third-party libraries, the standard library,
// instrumentation (which wraps every call and explains none), the runtime.
type frameClass uint8

const (
	classProgram frameClass = iota
	classLibrary
	classStd
	classInstrumentation
	classRuntime
	numFrameClasses
)

// program tells the program's own code from the rest.
type program struct {
	// paths are the import paths (a module's, or a package's) whose
	// packages are the program's, besides package main.
	paths []string
	// byFile, when set, also takes as the program's any package outside
	// the standard library whose source is not in the module cache or a
	// vendor directory: how an analysis run by another binary (otelfr's
	// command, its viewer) finds the code of the program that wrote the
	// trace.
	byFile bool
}

// defaultProgram is the program of a configuration without WithProgram:
// the main module of the running binary, from its build info, and the
// code outside the module cache.
var defaultProgram = sync.OnceValue(func() program {
	p := program{byFile: true}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Path != "" && bi.Main.Path != "command-line-arguments" {
		p.paths = []string{bi.Main.Path}
	}
	return p
})

// instrumentation lists the import paths of instrumentation: the
// OpenTelemetry API, SDK and contrib instrumentation (otelhttp, otelgrpc),
// and otelfr's own library packages. Their frames wrap the program's calls
// and never explain a wait.
var instrumentation = sync.OnceValue(func() []string {
	paths := []string{"go.opentelemetry.io"}
	// otelfr's module path, from this package's own import path.
	self := reflect.TypeFor[config]().PkgPath()
	if root, ok := strings.CutSuffix(self, "/analysis"); ok {
		for _, p := range []string{"analysis", "otelfr", "spanprocessor", "exporter", "snapstore", "viewer", "internal"} {
			paths = append(paths, root+"/"+p)
		}
	}
	return paths
})

// underPath reports whether package pkg is path or below it.
func underPath(pkg, path string) bool {
	return pkg == path || (strings.HasPrefix(pkg, path) && pkg[len(path)] == '/')
}

// class returns the class of a frame of function fn in source file file.
func (p program) class(fn, file string) frameClass {
	pkg := funcPackage(fn)
	// runtime/pprof, runtime/trace and runtime/debug are the standard
	// library's; the runtime's internals are not.
	if pkg == "runtime" || strings.HasPrefix(pkg, "runtime/internal/") || strings.HasPrefix(pkg, "internal/runtime/") {
		return classRuntime
	}
	for _, path := range instrumentation() {
		if underPath(pkg, path) {
			return classInstrumentation
		}
	}
	if pkg == "main" {
		return classProgram
	}
	for _, path := range p.paths {
		if underPath(pkg, path) {
			return classProgram
		}
	}
	first, _, _ := strings.Cut(pkg, "/")
	if !strings.Contains(first, ".") {
		return classStd
	}
	if p.byFile && file != "" && !inModuleCache(file) {
		return classProgram
	}
	return classLibrary
}

// inModuleCache reports whether a source file belongs to a dependency: it
// lies in a versioned module directory ("…/mod/example.com/lib@v1.2.3/…",
// or "example.com/lib@v1.2.3/…" in a -trimpath build) or a vendor
// directory.
func inModuleCache(file string) bool {
	file = strings.ReplaceAll(file, "\\", "/")
	return strings.Contains(file, "@v") || strings.Contains(file, "/vendor/") || strings.HasPrefix(file, "vendor/")
}

// placeFrame returns the frame of fs, innermost first, that names where the
// stack is: the first of the best class present (see frameClass).
func (p program) placeFrame(fs []Frame) (Frame, frameClass) {
	best, bestClass := Frame{}, numFrameClasses
	for _, f := range fs {
		c := p.class(f.Func, f.File)
		if c == classProgram {
			return f, c
		}
		if c < bestClass {
			best, bestClass = f, c
		}
	}
	return best, bestClass
}

// whoFrame returns the frame of fs that names what a goroutine is doing,
// as a waker or a holder of the Ps: the place (placeFrame) when it is in
// the program, else the outermost frame of the best class present, the
// library's entry point: http.(*persistConn).readLoop rather than
// http.(*wantConn).tryDeliver.
func (p program) whoFrame(fs []Frame) (Frame, frameClass) {
	f, c := p.placeFrame(fs)
	if c == classProgram || c == numFrameClasses {
		return f, c
	}
	for i := len(fs) - 1; i >= 0; i-- {
		if p.class(fs[i].Func, fs[i].File) == c {
			return fs[i], c
		}
	}
	return f, c
}

// funcPackage returns the import path of a function's package:
// "example.com/a/b.(*T).M" is in "example.com/a/b". The type arguments of a
// generic function, which may hold import paths, are not part of it.
func funcPackage(fn string) string {
	if i := strings.IndexByte(fn, '['); i >= 0 {
		fn = fn[:i]
	}
	slash := strings.LastIndexByte(fn, '/')
	dot := strings.IndexByte(fn[slash+1:], '.')
	if dot < 0 {
		return fn
	}
	return fn[:slash+1+dot]
}

// shortFunc drops a function name's import path but for the package name:
// "github.com/acme/cache.(*Cache).Get" becomes "cache.(*Cache).Get". The
// linker's escape of a dot in the last path element ("yaml%2ev3") is
// undone.
func shortFunc(fn string) string {
	head := fn
	if i := strings.IndexByte(head, '['); i >= 0 {
		head = head[:i]
	}
	s := fn[strings.LastIndexByte(head, '/')+1:]
	return strings.ReplaceAll(s, "%2e", ".")
}
