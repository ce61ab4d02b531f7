// helm-render renders a Helm chart's templates the way `helm template` does, for the test
// of deploy/helm/berth (tests/integration/packaging/test_helm.py): helm itself is not in
// Debian. It is Helm 3's rendering engine in small, on the same libraries: Go's
// text/template with sprig's function map (less env and expandenv, as Helm), Helm's
// toYaml, fromYaml, toJson, fromJson, include, tpl and required, missingkey=zero with
// "<no value>" removed, partials (templates/_*.tpl) parsed with the rest and not output,
// values.yaml merged with -f files (later wins, maps merged deeply) and --set-string a.b=c.
//
//	helm-render [--release NAME] [--namespace NS] [-f VALUES]... [--set-string K=V]... CHART
//
// Prints "---\n# Source: <chart>/templates/<file>\n<text>" per non-empty template, in file
// name order, as helm template does. Exit status 1 with the reason on any error.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	"gopkg.in/yaml.v2"
)

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

// normalize turns yaml.v2's map[interface{}]interface{} into map[string]interface{}, as
// Helm's loader (sigs.k8s.io/yaml, through JSON) gives templates.
func normalize(v interface{}) interface{} {
	switch t := v.(type) {
	case map[interface{}]interface{}:
		m := make(map[string]interface{}, len(t))
		for k, val := range t {
			m[fmt.Sprint(k)] = normalize(val)
		}
		return m
	case []interface{}:
		for i := range t {
			t[i] = normalize(t[i])
		}
		return t
	default:
		return v
	}
}

func readYAML(path string) (map[string]interface{}, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var v interface{}
	if err := yaml.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if v == nil {
		return map[string]interface{}{}, nil
	}
	m, ok := normalize(v).(map[string]interface{})
	if !ok {
		return nil, fmt.Errorf("%s: not a map", path)
	}
	return m, nil
}

// merge overlays src onto dst: maps merge key by key, anything else replaces (Helm's
// coalescing of user values over the chart's).
func merge(dst, src map[string]interface{}) {
	for k, v := range src {
		if sm, ok := v.(map[string]interface{}); ok {
			if dm, ok := dst[k].(map[string]interface{}); ok {
				merge(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
}

func setString(values map[string]interface{}, assignment string) error {
	eq := strings.IndexByte(assignment, '=')
	if eq <= 0 {
		return fmt.Errorf("--set-string %q: want key=value", assignment)
	}
	parts := strings.Split(assignment[:eq], ".")
	m := values
	for _, p := range parts[:len(parts)-1] {
		next, ok := m[p].(map[string]interface{})
		if !ok {
			next = map[string]interface{}{}
			m[p] = next
		}
		m = next
	}
	m[parts[len(parts)-1]] = assignment[eq+1:]
	return nil
}

// toYAML is Helm's: through JSON (sigs.k8s.io/yaml), so keys come out sorted, and without
// the final newline.
func toYAML(v interface{}) string {
	j, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	var obj interface{}
	if err := yaml.Unmarshal(j, &obj); err != nil {
		return ""
	}
	out, err := yaml.Marshal(obj)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(out), "\n")
}

func main() {
	var valueFiles, sets multi
	release, namespace := "release-name", "default"
	args := os.Args[1:]
	var chart string
	for i := 0; i < len(args); i++ {
		need := func() string {
			if i+1 >= len(args) {
				fail(fmt.Errorf("%s needs a value", args[i]))
			}
			i++
			return args[i]
		}
		switch args[i] {
		case "-f", "--values":
			valueFiles.Set(need())
		case "--set-string":
			sets.Set(need())
		case "--release":
			release = need()
		case "--namespace":
			namespace = need()
		default:
			if chart != "" || strings.HasPrefix(args[i], "-") {
				fail(fmt.Errorf("unexpected argument %q", args[i]))
			}
			chart = args[i]
		}
	}
	if chart == "" {
		fail(errors.New("usage: helm-render [--release NAME] [-f VALUES]... CHART"))
	}
	meta, err := readYAML(filepath.Join(chart, "Chart.yaml"))
	if err != nil {
		fail(err)
	}
	values, err := readYAML(filepath.Join(chart, "values.yaml"))
	if err != nil {
		fail(err)
	}
	for _, f := range valueFiles {
		extra, err := readYAML(f)
		if err != nil {
			fail(err)
		}
		merge(values, extra)
	}
	for _, s := range sets {
		if err := setString(values, s); err != nil {
			fail(err)
		}
	}
	name := fmt.Sprint(meta["name"])
	top := map[string]interface{}{
		"Values": values,
		"Release": map[string]interface{}{"Name": release, "Namespace": namespace,
			"Service": "Helm", "IsInstall": true, "IsUpgrade": false, "Revision": 1},
		"Chart": map[string]interface{}{"Name": name, "Version": meta["version"],
			"AppVersion": meta["appVersion"]},
		"Capabilities": map[string]interface{}{"KubeVersion": map[string]interface{}{
			"Version": "v1.28.0", "Major": "1", "Minor": "28"}},
	}

	root := template.New("gotpl")
	funcs := sprig.TxtFuncMap()
	delete(funcs, "env")
	delete(funcs, "expandenv")
	funcs["toYaml"] = toYAML
	funcs["fromYaml"] = func(s string) map[string]interface{} {
		var v interface{}
		m := map[string]interface{}{}
		if err := yaml.Unmarshal([]byte(s), &v); err != nil {
			m["Error"] = err.Error()
			return m
		}
		if n, ok := normalize(v).(map[string]interface{}); ok {
			return n
		}
		return m
	}
	funcs["toJson"] = func(v interface{}) string {
		b, _ := json.Marshal(v)
		return string(b)
	}
	funcs["fromJson"] = func(s string) map[string]interface{} {
		m := map[string]interface{}{}
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			m["Error"] = err.Error()
		}
		return m
	}
	funcs["include"] = func(name string, data interface{}) (string, error) {
		var buf bytes.Buffer
		err := root.ExecuteTemplate(&buf, name, data)
		return buf.String(), err
	}
	funcs["tpl"] = func(text string, data interface{}) (string, error) {
		t, err := root.Clone()
		if err != nil {
			return "", err
		}
		t, err = t.New("tpl").Parse(text)
		if err != nil {
			return "", err
		}
		var buf bytes.Buffer
		err = t.Execute(&buf, data)
		return buf.String(), err
	}
	funcs["required"] = func(msg string, v interface{}) (interface{}, error) {
		if v == nil {
			return nil, errors.New(msg)
		}
		if s, ok := v.(string); ok && s == "" {
			return nil, errors.New(msg)
		}
		return v, nil
	}
	root.Funcs(funcs).Option("missingkey=zero")

	dir := filepath.Join(chart, "templates")
	entries, err := os.ReadDir(dir)
	if err != nil {
		fail(err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		text, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			fail(err)
		}
		full := name + "/templates/" + e.Name()
		if _, err := root.New(full).Parse(string(text)); err != nil {
			fail(err)
		}
		names = append(names, e.Name())
	}
	sort.Strings(names)
	for _, file := range names {
		if strings.HasPrefix(file, "_") || !(strings.HasSuffix(file, ".yaml") ||
			strings.HasSuffix(file, ".yml") || strings.HasSuffix(file, ".tpl")) {
			continue
		}
		if strings.HasSuffix(file, ".tpl") {
			continue
		}
		full := name + "/templates/" + file
		data := map[string]interface{}{}
		for k, v := range top {
			data[k] = v
		}
		data["Template"] = map[string]interface{}{"Name": full, "BasePath": name + "/templates"}
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, full, data); err != nil {
			fail(err)
		}
		out := strings.ReplaceAll(buf.String(), "<no value>", "")
		if strings.TrimSpace(out) == "" {
			continue
		}
		fmt.Printf("---\n# Source: %s\n%s\n", full, strings.TrimRight(out, "\n"))
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "helm-render:", err)
	os.Exit(1)
}
