package workflows

// Changes to the interpreter that alter the commands a run issues (activities,
// timers, markers, child runs) are guarded with workflow.GetVersion under one of
// these ids, so a run started before the change replays as it ran. The recorded
// histories in testdata (TestReplayRecordedHistories) catch a change that forgot
// its guard. Never remove an id while runs older than its change may still be open.
const (
	// changeTaskOverdue: a task with a due time tells its assignee once when it is
	// overdue. Before it, due was only shown in the inbox: runs that started then
	// wait on the task without the extra timer.
	changeTaskOverdue = "task-overdue-notice"
)
