module.exports=false
