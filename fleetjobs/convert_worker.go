package fleetjobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"

	"github.com/daisychain-db/daisychain/cutover"
)

// KindConvert is the job kind of a conversion.
const KindConvert = "daisychain.convert"

// ConvertArgs asks for an instance to be converted onto a new replica
// (cutover.Mover.Convert: every tenant at once), as a move job asks for a
// move: by the journal, whatever attempt it is.
type ConvertArgs struct {
	// ConvertID names the conversion in the journal
	// (cutover.ConvertRequest.ID) and makes the job unique.
	ConvertID string `json:"convert_id" river:"unique"`
	// Instance is the instance to convert; NewInstance the ID its
	// replica gets in the catalog.
	Instance    string `json:"instance"`
	NewInstance string `json:"new_instance"`
	// Generation counts the jobs a chain gave the conversion after the
	// worker of the one before died (0 for the first): each is unique,
	// and each does what the journal says is left.
	Generation int `json:"generation,omitempty" river:"unique"`
}

// Kind implements river.JobArgs.
func (ConvertArgs) Kind() string { return KindConvert }

// InsertOpts implements river.JobArgsWithInsertOpts: one job per ID.
func (ConvertArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{UniqueOpts: uniqueByID} }

func (a ConvertArgs) validate() error {
	var errs []error
	if a.ConvertID == "" {
		errs = append(errs, errors.New("ConvertID is empty: name the conversion, as Resume will"))
	}
	if a.Instance == "" || a.NewInstance == "" {
		errs = append(errs, errors.New("Instance and NewInstance are required: the instance to convert and its replica's ID"))
	}
	return argsError(KindConvert, errs)
}

// convertWorker runs ConvertArgs jobs.
type convertWorker struct {
	river.WorkerDefaults[ConvertArgs]
	cfg Config
}

// Timeout is a move job's (Config.MoveTimeout): a conversion copies
// nothing, but waits for a replica to catch up and runs one window for
// every tenant.
func (w *convertWorker) Timeout(*river.Job[ConvertArgs]) time.Duration { return w.cfg.MoveTimeout }

// Work does what the journal says is left of the conversion: start it,
// resume it, or nothing.
func (w *convertWorker) Work(ctx context.Context, job *river.Job[ConvertArgs]) error {
	defer wakeParent(ctx, w.cfg.Logger, metaOf(job.JobRow))
	a := job.Args
	if err := a.validate(); err != nil {
		return river.JobCancel(err)
	}
	state, planned, err := journalState(ctx, w.cfg.Journal, a.ConvertID)
	switch {
	case err != nil:
	case planned != nil && !planned.Conversion:
		err = fmt.Errorf("%w: %s is a move of %s", ErrMoveIDConflict, a.ConvertID, planned.Tenant)
	case planned != nil && (planned.Instance != a.Instance || planned.NewInstance != a.NewInstance):
		err = fmt.Errorf("%w: the journal's %s converts %s into %s, the job asks for %s into %s", ErrMoveIDConflict,
			a.ConvertID, planned.Instance, planned.NewInstance, a.Instance, a.NewInstance)
	}
	if err != nil {
		return settle(err, w.cfg.BusySnooze)
	}
	decision, rep, err := byJournal(ctx, w.cfg.Mover, a.ConvertID, state, func() (*cutover.Report, error) {
		return w.cfg.Mover.Convert(ctx, cutover.ConvertRequest{ID: a.ConvertID, Instance: a.Instance, NewInstance: a.NewInstance})
	})
	if err != nil {
		w.cfg.Logger.InfoContext(ctx, "fleetjobs: conversion job did not finish", "job", job.ID, "conversion", a.ConvertID,
			"journal", state.String(), "attempt", job.Attempt, "err", err)
		return settle(err, w.cfg.BusySnooze)
	}
	w.cfg.Logger.InfoContext(ctx, "fleetjobs: conversion job finished", "job", job.ID, "conversion", a.ConvertID,
		"decision", string(decision))
	return river.RecordOutput(ctx, Output{Decision: decision, Report: rep})
}
