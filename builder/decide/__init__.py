"""The decision: facts about a project (checkout, registered repositories, their remotes),
the pure rules that turn them into a Plan, and the planning that gathers both."""
