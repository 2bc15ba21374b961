package resource

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hatui/hatui/agent/resource/command"
)

// DefaultOCFRoot is where Debian's resource-agents package installs agents.
const DefaultOCFRoot = "/usr/lib/ocf"

// OCF exit codes (Open Cluster Framework resource agent API, as used by
// Pacemaker).
const (
	OCFSuccess          = 0
	OCFErrGeneric       = 1
	OCFErrArgs          = 2
	OCFErrUnimplemented = 3
	OCFErrPerm          = 4
	OCFErrInstalled     = 5
	OCFErrConfigured    = 6
	OCFNotRunning       = 7
	OCFRunningMaster    = 8
	OCFFailedMaster     = 9
	OCFDegraded         = 190
	OCFDegradedMaster   = 191
)

// OCFCodeName names an OCF exit code, or says it is not one.
func OCFCodeName(code int) string {
	switch code {
	case OCFSuccess:
		return "OCF_SUCCESS"
	case OCFErrGeneric:
		return "OCF_ERR_GENERIC"
	case OCFErrArgs:
		return "OCF_ERR_ARGS"
	case OCFErrUnimplemented:
		return "OCF_ERR_UNIMPLEMENTED"
	case OCFErrPerm:
		return "OCF_ERR_PERM"
	case OCFErrInstalled:
		return "OCF_ERR_INSTALLED"
	case OCFErrConfigured:
		return "OCF_ERR_CONFIGURED"
	case OCFNotRunning:
		return "OCF_NOT_RUNNING"
	case OCFRunningMaster:
		return "OCF_RUNNING_MASTER"
	case OCFFailedMaster:
		return "OCF_FAILED_MASTER"
	case OCFDegraded:
		return "OCF_DEGRADED"
	case OCFDegradedMaster:
		return "OCF_DEGRADED_MASTER"
	}
	return "not an OCF exit code"
}

// ocf parameters that configure the agent call itself; every other
// parameter is passed to the agent as OCF_RESKEY_<name>.
var ocfReserved = []string{"agent", "provider", "ocf_root"}

// metaDataTimeout bounds the meta-data call New makes to validate
// parameters.
const metaDataTimeout = 5 * time.Second

// ocfResource runs an OCF resource agent:
// $OCF_ROOT/resource.d/<provider>/<agent> start|stop|monitor with the
// resource's parameters as OCF_RESKEY_* variables.
//
// Parameters:
//
//	agent     the agent's name, such as "Dummy" or "IPaddr2" (required)
//	provider  the agent's provider directory (default "heartbeat")
//	ocf_root  the OCF root (default $OCF_ROOT, else /usr/lib/ocf)
//	anything else: passed as OCF_RESKEY_<name>; checked against the
//	parameters the agent declares in its meta-data
type ocfResource struct {
	name     string
	root     string
	provider string
	agent    string
	path     string
	reskeys  map[string]string
}

func newOCF(spec Spec) (driver, error) {
	o := &ocfResource{
		name:     spec.Name,
		root:     spec.Params["ocf_root"],
		provider: spec.Params["provider"],
		agent:    spec.Params["agent"],
		reskeys:  map[string]string{},
	}
	if o.root == "" {
		o.root = os.Getenv("OCF_ROOT")
	}
	if o.root == "" {
		o.root = DefaultOCFRoot
	}
	if !filepath.IsAbs(o.root) {
		return nil, &ConfigError{Resource: spec.Name, Key: "ocf_root", Problem: fmt.Sprintf("%q is not an absolute path", o.root),
			Want: "the OCF root directory, such as /usr/lib/ocf"}
	}
	if o.provider == "" {
		o.provider = "heartbeat"
	}
	if !pathElem(o.provider) {
		return nil, &ConfigError{Resource: spec.Name, Key: "provider", Problem: fmt.Sprintf("%q is not a provider name", o.provider),
			Want: "a directory name under $OCF_ROOT/resource.d, such as \"heartbeat\""}
	}
	if !pathElem(o.agent) {
		problem := fmt.Sprintf("%q is not an agent name", o.agent)
		if o.agent == "" {
			problem = "missing"
		}
		return nil, &ConfigError{Resource: spec.Name, Key: "agent", Problem: problem,
			Want: "an agent name under $OCF_ROOT/resource.d/" + o.provider + ", such as \"Dummy\""}
	}
	o.path = filepath.Join(o.root, "resource.d", o.provider, o.agent)
	if err := checkExecutable(spec.Name, "agent", o.path,
		"an installed OCF agent (apt-get install resource-agents for the heartbeat provider)"); err != nil {
		return nil, err
	}
	for k, v := range spec.Params {
		if slices.Contains(ocfReserved, k) {
			continue
		}
		if !envName(k) {
			return nil, &ConfigError{Resource: spec.Name, Key: k, Problem: "not usable as an OCF parameter name",
				Want: "letters, digits and '_', not starting with a digit"}
		}
		if strings.ContainsRune(v, 0) {
			return nil, &ConfigError{Resource: spec.Name, Key: k, Problem: "value contains a NUL byte", Want: "text"}
		}
		o.reskeys[k] = v
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	return o, nil
}

// validate checks the parameters against the agent's meta-data. An agent
// whose meta-data cannot be read or parsed is not checked: meta-data is a
// convenience of the standard, not a duty every agent fulfils.
func (o *ocfResource) validate() error {
	ctx, cancel := context.WithTimeout(context.Background(), metaDataTimeout)
	defer cancel()
	res, err := command.Run(ctx, command.Cmd{Path: o.path, Args: []string{"meta-data"}, Env: o.env(metaDataTimeout), MaxOutput: 1 << 20})
	if err != nil || res.Code != 0 {
		return nil
	}
	md, err := ParseOCFMetaData(res.Stdout)
	if err != nil {
		return nil
	}
	return md.Check(o.name, o.reskeys)
}

func pathElem(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, "/\x00")
}

func envName(s string) bool {
	if s == "" || (s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for _, c := range []byte(s) {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// env is the OCF environment for one call bounded by timeout.
func (o *ocfResource) env(timeout time.Duration) []string {
	env := []string{
		"OCF_ROOT=" + o.root,
		"OCF_RA_VERSION_MAJOR=1",
		"OCF_RA_VERSION_MINOR=1",
		"OCF_RESOURCE_INSTANCE=" + o.name,
		"OCF_RESOURCE_TYPE=" + o.agent,
		"OCF_RESOURCE_PROVIDER=" + o.provider,
		"OCF_RESKEY_CRM_meta_timeout=" + strconv.FormatInt(timeout.Milliseconds(), 10),
	}
	keys := make([]string, 0, len(o.reskeys))
	for k := range o.reskeys {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		env = append(env, "OCF_RESKEY_"+k+"="+o.reskeys[k])
	}
	return env
}

func (o *ocfResource) run(ctx context.Context, action string) (command.Result, error) {
	timeout := metaDataTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	return command.Run(ctx, command.Cmd{Path: o.path, Args: []string{action}, Env: o.env(timeout)})
}

func (o *ocfResource) start(ctx context.Context) error {
	res, err := o.run(ctx, "start")
	if err != nil {
		return err
	}
	if res.Code != OCFSuccess {
		return o.exitError("start", res)
	}
	return nil
}

func (o *ocfResource) stop(ctx context.Context) error {
	res, err := o.run(ctx, "stop")
	if err != nil {
		return err
	}
	// Not running is what a stop wants; Pacemaker takes it as success too.
	if res.Code != OCFSuccess && res.Code != OCFNotRunning {
		return o.exitError("stop", res)
	}
	return nil
}

func (o *ocfResource) exitError(action string, res command.Result) error {
	return &ExitError{Program: o.provider + ":" + o.agent + " " + action, Code: res.Code,
		Meaning: OCFCodeName(res.Code), Output: res.Summary()}
}

func (o *ocfResource) monitor(ctx context.Context) Status {
	res, err := o.run(ctx, "monitor")
	if err != nil {
		return Status{State: StateFailed, Detail: err.Error()}
	}
	return OCFMonitorStatus(res.Code, res.Summary())
}

// OCFMonitorStatus maps the exit code of an OCF monitor action, with the
// agent's one-line output, to a Status.
func OCFMonitorStatus(code int, out string) Status {
	with := func(s string) string {
		if out == "" {
			return s
		}
		return s + ": " + out
	}
	switch code {
	case OCFSuccess:
		return Status{State: StateRunning, Detail: out}
	case OCFNotRunning:
		return Status{State: StateStopped, Detail: out}
	case OCFRunningMaster:
		return Status{State: StateRunning, Detail: with("running as master")}
	case OCFDegraded:
		return Status{State: StateRunning, Detail: with("degraded")}
	case OCFDegradedMaster:
		return Status{State: StateRunning, Detail: with("degraded master")}
	}
	return Status{State: StateFailed, Detail: with(fmt.Sprintf("%s (%d)", OCFCodeName(code), code))}
}

// OCFMetaData is what an agent says about itself with "meta-data".
type OCFMetaData struct {
	Name       string         `xml:"name,attr"`
	Parameters []OCFParameter `xml:"parameters>parameter"`
	Actions    []OCFAction    `xml:"actions>action"`
}

// OCFParameter is one parameter an agent accepts.
type OCFParameter struct {
	Name     string `xml:"name,attr"`
	Required string `xml:"required,attr"`
	Content  struct {
		Type    string `xml:"type,attr"`
		Default string `xml:"default,attr"`
	} `xml:"content"`
}

// OCFAction is one action an agent implements, with its advised timeout.
type OCFAction struct {
	Name    string `xml:"name,attr"`
	Timeout string `xml:"timeout,attr"`
}

// ParseOCFMetaData parses an agent's meta-data XML.
func ParseOCFMetaData(b []byte) (OCFMetaData, error) {
	var md OCFMetaData
	dec := xml.NewDecoder(strings.NewReader(string(b)))
	dec.Strict = false
	// Agents declare ISO-8859-1 or UTF-8; names and types are ASCII, so
	// reading any declared charset as bytes is enough for validation.
	dec.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) { return r, nil }
	var root struct {
		XMLName xml.Name
		OCFMetaData
	}
	if err := dec.Decode(&root); err != nil {
		return md, fmt.Errorf("parse OCF meta-data: %w", err)
	}
	if root.XMLName.Local != "resource-agent" {
		return md, fmt.Errorf("parse OCF meta-data: root element is <%s>, want <resource-agent>", root.XMLName.Local)
	}
	return root.OCFMetaData, nil
}

// Check validates params (without the OCF_RESKEY_ prefix) against the
// declared parameters, as *ConfigError for resource res.
func (md OCFMetaData) Check(res string, params map[string]string) error {
	names := make([]string, 0, len(md.Parameters))
	for _, p := range md.Parameters {
		names = append(names, p.Name)
	}
	slices.Sort(names)
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !slices.Contains(names, k) {
			want := "one of the agent's parameters: " + strings.Join(names, ", ")
			if len(names) == 0 {
				want = "no parameters: the agent declares none"
			}
			return &ConfigError{Resource: res, Key: k, Problem: fmt.Sprintf("agent %s does not declare this parameter", md.Name),
				Want: want + " (or one of " + strings.Join(ocfReserved, ", ") + ")"}
		}
	}
	for _, p := range md.Parameters {
		v, set := params[p.Name]
		if !set {
			if ocfBool(p.Required) && p.Content.Default == "" {
				return &ConfigError{Resource: res, Key: p.Name, Problem: fmt.Sprintf("missing, and agent %s requires it", md.Name),
					Want: "a value of type " + orDefault(p.Content.Type, "string")}
			}
			continue
		}
		switch strings.ToLower(p.Content.Type) {
		case "integer":
			if _, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err != nil {
				return &ConfigError{Resource: res, Key: p.Name, Problem: fmt.Sprintf("%q is not an integer", v), Want: "an integer such as 10"}
			}
		case "boolean":
			if !isOCFBool(v) {
				return &ConfigError{Resource: res, Key: p.Name, Problem: fmt.Sprintf("%q is not a boolean", v),
					Want: "true or false (also yes/no, on/off, 1/0)"}
			}
		}
	}
	return nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func isOCFBool(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "0", "yes", "no", "true", "false", "on", "off", "y", "n":
		return true
	}
	return false
}

func ocfBool(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "yes", "true", "on", "y":
		return true
	}
	return false
}
