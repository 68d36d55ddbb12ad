"""nbgrader's configuration for this course.

:mod:`course.build` and :mod:`course.grade` copy this file into the nbgrader course root they
create (``course/build/nbgrader``, ``course/build/grades/nbgrader``), so the ``nbgrader``
command run in that folder sees the same settings.
"""

c = get_config()  # noqa: F821 - nbgrader (traitlets) defines it when it loads this file

c.CourseDirectory.course_id = "gfl-from-scratch"
# What a solution region becomes in the student release: the checking engine then reports
# "your forward raised NotImplementedError" for every property of the piece.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
# A graded cell runs check(...): seconds. The limit only stops a submission that never ends.
c.Execute.timeout = 300
# Students and assignments enter the gradebook on first sight (no roster to maintain).
c.Autograde.create_student = True
c.GenerateAssignment.create_assignment = True
# A graded cell deleted from a submission scores 0 (course.grade's feedback says it is
# missing). nbgrader can put such cells back (OverwriteCells.add_missing_cells), but 0.9.6
# fails when the cell before a graded cell is a locked markdown cell, as here.
c.OverwriteCells.add_missing_cells = False
