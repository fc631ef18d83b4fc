// Package testkit holds test helpers shared by tailplane's packages.
package testkit
