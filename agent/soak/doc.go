// Package soak is a fault-injection soak of a whole hatui deployment
// with its invariants checked the whole time (issue 13): a seeded planner
// of faults, a timeline of what every node ran while they happened, the
// checks of the timeline (never two holders of a group, never two sites
// serving the geo ticket), and a report with an SVG picture of holders
// and faults over time.
//
// The package itself is pure: it plans, records and judges. TestSoak (in
// soak_test.go) builds the deployment in network namespaces with
// agent/netlab, runs real ha-agent processes, carries out a plan and
// feeds the samples in. The same seed gives the same plan, so a failing
// run is replayed with its seed:
//
//	HATUI_SOAK_SEED=5 HATUI_SOAK_DURATION=10m go test -run '^TestSoak$' -timeout 30m ./agent/soak/
//
// HATUI_SOAK_REPORT=DIR keeps the report (report.txt, timeline.svg).
package soak
