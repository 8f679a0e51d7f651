"""The side-by-side report: runs read back from MLflow into pandas, a leaderboard, and plots."""
