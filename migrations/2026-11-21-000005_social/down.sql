DROP TABLE follows;
DROP TABLE comments;
DROP TABLE review_likes;
