DROP TABLE titles;
