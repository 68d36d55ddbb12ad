"""The course: exercise notebooks graded by the checking engine, built and graded with nbgrader.

``course/source/<assignment>/<assignment>.ipynb`` are the exercises, written once with their
solutions between nbgrader's ``### BEGIN SOLUTION`` / ``### END SOLUTION`` markers.
:mod:`course.build` (``make course``) generates the student release and the teacher's version;
:mod:`course.grade` (``make grade SUBMISSIONS=dir``) grades a folder of submissions.
``docs/course.md`` explains both.
"""
