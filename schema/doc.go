// Package schema loads a tailnet config repository (HuJSON, JSON and CUE
// files) into a typed Tailnet, reporting every problem at file:line:col.
package schema
