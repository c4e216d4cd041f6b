"""caesar-rest accounting: usage per user, app and day, built to never double count.

Every fact is stored once under the id of what it is about (a job, a file), so a
duplicated or reordered event rewrites the same document instead of adding to a sum;
totals are computed when a report is read.
"""
