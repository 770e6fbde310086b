"""The validate stage: declarative Great Expectations suites, verdicts and Data Docs."""
